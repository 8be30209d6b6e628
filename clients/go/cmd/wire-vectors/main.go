// wire-vectors decodes and re-encodes the contracts' wire-compatibility vectors
// (contracts/vectors/vectors.json, written by scripts/contract_vectors.py) with Go:
// "current" vectors with the code generated from protos/ (gen/go), "next-release"
// vectors with descriptors of the last release only (contracts/baseline/image.binpb,
// through dynamicpb), so that fields and enum values the release does not know must
// survive as unknown. It prints {"results": [{"id", "wire"}]} (wire in base64) for
// tests/contracts/test_wire_vectors.py to compare; it judges nothing itself.
//
//	go run ./cmd/wire-vectors ../../contracts/vectors/vectors.json ../../contracts/baseline/image.binpb
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// Every package of protos/, registered in protoregistry.GlobalTypes.
	_ "meshkit-shop/gen/go/shop/common/v1"
	_ "meshkit-shop/gen/go/shop/events/v1"
	_ "meshkit-shop/gen/go/shop/inventory/v1"
	_ "meshkit-shop/gen/go/shop/order/v1"
	_ "meshkit-shop/gen/go/shop/payment/v1"
	_ "meshkit-shop/gen/go/shop/shipping/v1"
)

type vector struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Reader string `json:"reader"`
	Wire   []byte `json:"wire"` // base64 in JSON
}

type result struct {
	ID    string `json:"id"`
	Wire  []byte `json:"wire,omitempty"`
	Error string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: wire-vectors VECTORS_JSON BASELINE_IMAGE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "wire-vectors (go):", err)
		os.Exit(1)
	}
}

func run(vectorsPath, baselinePath string) error {
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		return err
	}
	var file struct{ Vectors []vector }
	if err := json.Unmarshal(raw, &file); err != nil {
		return err
	}
	baseline, err := loadImage(baselinePath)
	if err != nil {
		return fmt.Errorf("%s: %w", baselinePath, err)
	}
	results := make([]result, 0, len(file.Vectors))
	for _, v := range file.Vectors {
		wire, err := roundTrip(v, baseline)
		r := result{ID: v.ID, Wire: wire}
		if err != nil {
			r.Error = err.Error()
		}
		results = append(results, r)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"results": results})
}

func loadImage(path string) (*protoregistry.Files, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	return protodesc.NewFiles(&set)
}

// roundTrip decodes v with its reader and encodes it again (deterministically).
func roundTrip(v vector, baseline *protoregistry.Files) ([]byte, error) {
	name := protoreflect.FullName(v.Type)
	var msg proto.Message
	switch v.Reader {
	case "current":
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			return nil, err
		}
		msg = mt.New().Interface()
	case "baseline":
		d, err := baseline.FindDescriptorByName(name)
		if err != nil {
			return nil, err
		}
		md, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s is not a message", name)
		}
		msg = dynamicpb.NewMessage(md)
	default:
		return nil, fmt.Errorf("unknown reader %q", v.Reader)
	}
	if err := proto.Unmarshal(v.Wire, msg); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(msg)
}
