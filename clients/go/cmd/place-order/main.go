// place-order places an order through the running mesh and reads it back until it is
// final: it finds the order service in Consul, calls it over mTLS as the identity whose
// certificate is in MESH_CERT_DIR, and prints the final order. Exit status 0 only when
// the order is CONFIRMED.
//
//	CONSUL_HTTP_ADDR=127.0.0.1:8500 MESH_CERT_DIR=.state/certs/storefront go run ./cmd/place-order
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"meshkit-shop/clients/go/mesh"
	commonv1 "meshkit-shop/gen/go/shop/common/v1"
	orderv1 "meshkit-shop/gen/go/shop/order/v1"
)

const (
	callTimeout  = 10 * time.Second // the mesh rejects calls without a deadline, or above 30 s
	pollInterval = 200 * time.Millisecond
	pollFor      = 30 * time.Second
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "place-order (go):", err)
		os.Exit(1)
	}
}

func run() error {
	env, err := mesh.FromEnv()
	if err != nil {
		return err
	}
	conn, err := env.Dial("order", orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := orderv1.NewOrderServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	placed, err := client.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{
		CustomerId: "c-polyglot-go",
		Items: []*commonv1.LineItem{{
			Sku:       "SKU-KEYBOARD",
			Quantity:  1,
			UnitPrice: &commonv1.Money{CurrencyCode: "EUR", Units: 49, Nanos: 900_000_000},
		}},
		ShippingAddress: &commonv1.Address{
			Recipient: "Ada Lovelace", Lines: []string{"Main St 1"}, City: "Berlin",
			PostalCode: "10115", CountryCode: "DE",
		},
		PaymentToken:   "tok_visa",
		IdempotencyKey: fmt.Sprintf("polyglot-go-%d-%d", os.Getpid(), time.Now().UnixNano()),
	})
	cancel()
	if err != nil {
		return fmt.Errorf("PlaceOrder: %w", err)
	}
	order := placed.GetOrder()
	fmt.Printf("go: placed order %s, status %s\n", order.GetOrderId(), order.GetStatus())

	// Read it back. The order may still be PENDING and become final later (the flow runs
	// on events): poll GetOrder until it is CONFIRMED or CANCELLED.
	polls := 0
	for until := time.Now().Add(pollFor); ; polls++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		got, err := client.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: order.GetOrderId()})
		cancel()
		if err != nil {
			return fmt.Errorf("GetOrder: %w", err)
		}
		order = got.GetOrder()
		if final(order.GetStatus()) {
			break
		}
		if time.Now().After(until) {
			return fmt.Errorf("order %s still %s after %s", order.GetOrderId(), order.GetStatus(), pollFor)
		}
		time.Sleep(pollInterval)
	}

	fmt.Printf("go: order %s is %s (read back %d times)\n", order.GetOrderId(), order.GetStatus(), polls+1)
	fmt.Println(protojson.MarshalOptions{Multiline: true, Indent: "  "}.Format(order))
	if order.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
		os.Exit(2)
	}
	return nil
}

func final(s orderv1.OrderStatus) bool {
	return s == orderv1.OrderStatus_ORDER_STATUS_CONFIRMED || s == orderv1.OrderStatus_ORDER_STATUS_CANCELLED
}
