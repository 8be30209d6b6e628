// Places an order through the running mesh and reads it back until it is final: finds
// the order service in Consul, calls it over mTLS as the identity whose certificate is in
// MESH_CERT_DIR, prints the final order. Exit status 0 only when the order is CONFIRMED.
//
//   CONSUL_HTTP_ADDR=127.0.0.1:8500 MESH_CERT_DIR=.state/certs/storefront npm run place-order
import { toJsonString } from "@bufbuild/protobuf";

import {
  OrderSchema,
  OrderService,
  OrderStatus,
  type Order,
} from "../../../gen/ts/shop/order/v1/order_pb.js";
import { dial, meshEnv } from "./mesh.js";

const CALL = { timeoutMs: 10_000 }; // the mesh rejects calls without a deadline, or above 30 s
const POLL_INTERVAL_MS = 200;
const POLL_FOR_MS = 30_000;

const statusName = (s: OrderStatus) => `ORDER_STATUS_${OrderStatus[s]}`;
const final = (s: OrderStatus) => s === OrderStatus.CONFIRMED || s === OrderStatus.CANCELLED;

async function main(): Promise<number> {
  const orders = await dial(meshEnv(), "order", OrderService);
  try {
    const placed = await orders.placeOrder(
      {
        customerId: "c-polyglot-node",
        items: [
          {
            sku: "SKU-KEYBOARD",
            quantity: 1,
            unitPrice: { currencyCode: "EUR", units: 49n, nanos: 900_000_000 },
          },
        ],
        shippingAddress: {
          recipient: "Ada Lovelace",
          lines: ["Main St 1"],
          city: "Berlin",
          postalCode: "10115",
          countryCode: "DE",
        },
        paymentToken: "tok_visa",
        idempotencyKey: `polyglot-node-${process.pid}-${Date.now()}`,
      },
      CALL,
    );
    let order: Order | undefined = placed.order;
    if (!order) {
      throw new Error("PlaceOrder answered without an order");
    }
    console.log(`node: placed order ${order.orderId}, status ${statusName(order.status)}`);

    // Read it back. The order may still be PENDING and become final later (the flow runs
    // on events): poll GetOrder until it is CONFIRMED or CANCELLED.
    let reads = 0;
    const until = Date.now() + POLL_FOR_MS;
    for (;;) {
      const got: Order | undefined = (await orders.getOrder({ orderId: order.orderId }, CALL))
        .order;
      reads++;
      if (!got) {
        throw new Error("GetOrder answered without an order");
      }
      order = got;
      if (final(order.status)) {
        break;
      }
      if (Date.now() > until) {
        throw new Error(`order ${order.orderId} still ${statusName(order.status)}`);
      }
      await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
    }

    console.log(
      `node: order ${order.orderId} is ${statusName(order.status)} (read back ${reads} times)`,
    );
    console.log(toJsonString(OrderSchema, order, { prettySpaces: 2 }));
    return order.status === OrderStatus.CONFIRMED ? 0 : 2;
  } finally {
    orders.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error("place-order (node):", err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
