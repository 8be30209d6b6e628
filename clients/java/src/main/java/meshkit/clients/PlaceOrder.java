package meshkit.clients;

import com.google.protobuf.util.JsonFormat;
import io.grpc.ManagedChannel;
import java.util.concurrent.TimeUnit;
import shop.common.v1.AddressOuterClass.Address;
import shop.common.v1.LineItemOuterClass.LineItem;
import shop.common.v1.MoneyOuterClass.Money;
import shop.order.v1.OrderOuterClass;
import shop.order.v1.OrderOuterClass.GetOrderRequest;
import shop.order.v1.OrderOuterClass.Order;
import shop.order.v1.OrderOuterClass.OrderStatus;
import shop.order.v1.OrderOuterClass.PlaceOrderRequest;
import shop.order.v1.OrderServiceGrpc;
import shop.order.v1.OrderServiceGrpc.OrderServiceBlockingStub;

/**
 * Places an order through the running mesh and reads it back until it is final: finds the
 * order service in Consul, calls it over mTLS as the identity whose certificate is in
 * MESH_CERT_DIR, prints the final order. Exit status 0 only when the order is CONFIRMED.
 *
 * <pre>
 * CONSUL_HTTP_ADDR=127.0.0.1:8500 MESH_CERT_DIR=.state/certs/storefront java -jar target/place-order.jar
 * </pre>
 */
public final class PlaceOrder {
  // The mesh rejects calls without a deadline, or above 30 s.
  private static final long CALL_TIMEOUT_MS = 10_000;
  private static final long POLL_INTERVAL_MS = 200;
  private static final long POLL_FOR_MS = 30_000;

  public static void main(String[] args) {
    try {
      System.exit(run());
    } catch (Exception e) {
      System.err.println("place-order (java): " + e);
      System.exit(1);
    }
  }

  private static boolean isFinal(OrderStatus s) {
    return s == OrderStatus.ORDER_STATUS_CONFIRMED || s == OrderStatus.ORDER_STATUS_CANCELLED;
  }

  private static int run() throws Exception {
    ManagedChannel channel =
        Mesh.fromEnv()
            .dial("order", OrderOuterClass.getDescriptor().findServiceByName("OrderService"));
    try {
      OrderServiceBlockingStub orders = OrderServiceGrpc.newBlockingStub(channel);
      PlaceOrderRequest request =
          PlaceOrderRequest.newBuilder()
              .setCustomerId("c-polyglot-java")
              .addItems(
                  LineItem.newBuilder()
                      .setSku("SKU-KEYBOARD")
                      .setQuantity(1)
                      .setUnitPrice(
                          Money.newBuilder()
                              .setCurrencyCode("EUR")
                              .setUnits(49)
                              .setNanos(900_000_000)))
              .setShippingAddress(
                  Address.newBuilder()
                      .setRecipient("Ada Lovelace")
                      .addLines("Main St 1")
                      .setCity("Berlin")
                      .setPostalCode("10115")
                      .setCountryCode("DE"))
              .setPaymentToken("tok_visa")
              .setIdempotencyKey(
                  "polyglot-java-" + ProcessHandle.current().pid() + "-" + System.nanoTime())
              .build();
      Order order =
          orders
              .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
              .placeOrder(request)
              .getOrder();

      System.out.printf(
          "java: placed order %s, status %s%n", order.getOrderId(), order.getStatus());

      // Read it back. The order may still be PENDING and become final later (the flow runs
      // on events): poll GetOrder until it is CONFIRMED or CANCELLED.
      int reads = 0;
      long until = System.currentTimeMillis() + POLL_FOR_MS;
      while (true) {
        order =
            orders
                .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
                .getOrder(GetOrderRequest.newBuilder().setOrderId(order.getOrderId()).build())
                .getOrder();
        reads++;
        if (isFinal(order.getStatus())) {
          break;
        }
        if (System.currentTimeMillis() > until) {
          throw new IllegalStateException(
              "order " + order.getOrderId() + " still " + order.getStatus());
        }
        Thread.sleep(POLL_INTERVAL_MS);
      }

      System.out.printf(
          "java: order %s is %s (read back %d times)%n",
          order.getOrderId(), order.getStatus(), reads);
      System.out.println(JsonFormat.printer().print(order));
      return order.getStatus() == OrderStatus.ORDER_STATUS_CONFIRMED ? 0 : 2;
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
