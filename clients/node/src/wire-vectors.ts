// Decodes and re-encodes the contracts' wire-compatibility vectors
// (contracts/vectors/vectors.json, written by scripts/contract_vectors.py) with
// @bufbuild/protobuf: "current" vectors with the code generated from protos/ (gen/ts),
// "next-release" vectors with descriptors of the last release only
// (contracts/baseline/image.binpb), so that fields and enum values the release does not
// know must survive as unknown. Prints {"results": [{"id", "wire"}]} (wire in base64) for
// tests/contracts/test_wire_vectors.py to compare; it judges nothing itself.
//
//   node dist/clients/node/src/wire-vectors.js VECTORS_JSON BASELINE_IMAGE
import { readFileSync } from "node:fs";

import {
  createFileRegistry,
  createRegistry,
  fromBinary,
  toBinary,
  type Registry,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

import { file_shop_common_v1_address } from "../../../gen/ts/shop/common/v1/address_pb.js";
import { file_shop_common_v1_line_item } from "../../../gen/ts/shop/common/v1/line_item_pb.js";
import { file_shop_common_v1_money } from "../../../gen/ts/shop/common/v1/money_pb.js";
import { file_shop_events_v1_envelope } from "../../../gen/ts/shop/events/v1/envelope_pb.js";
import { file_shop_events_v1_events } from "../../../gen/ts/shop/events/v1/events_pb.js";
import { file_shop_inventory_v1_inventory } from "../../../gen/ts/shop/inventory/v1/inventory_pb.js";
import { file_shop_order_v1_order } from "../../../gen/ts/shop/order/v1/order_pb.js";
import { file_shop_payment_v1_payment } from "../../../gen/ts/shop/payment/v1/payment_pb.js";
import { file_shop_shipping_v1_shipping } from "../../../gen/ts/shop/shipping/v1/shipping_pb.js";

interface Vector {
  id: string;
  type: string;
  reader: "current" | "baseline";
  wire: string;
}

interface Result {
  id: string;
  wire?: string;
  error?: string;
}

/** Every package of protos/, as generated into gen/ts. */
const current = createRegistry(
  file_shop_common_v1_address,
  file_shop_common_v1_line_item,
  file_shop_common_v1_money,
  file_shop_events_v1_envelope,
  file_shop_events_v1_events,
  file_shop_inventory_v1_inventory,
  file_shop_order_v1_order,
  file_shop_payment_v1_payment,
  file_shop_shipping_v1_shipping,
);

function roundTrip(v: Vector, registries: Record<Vector["reader"], Registry>): Result {
  const registry = registries[v.reader];
  if (!registry) {
    return { id: v.id, error: `unknown reader ${v.reader}` };
  }
  const desc = registry.getMessage(v.type);
  if (!desc) {
    return { id: v.id, error: `${v.type} not found (${v.reader})` };
  }
  try {
    const msg = fromBinary(desc, Buffer.from(v.wire, "base64"));
    return { id: v.id, wire: Buffer.from(toBinary(desc, msg)).toString("base64") };
  } catch (err) {
    return { id: v.id, error: err instanceof Error ? err.message : String(err) };
  }
}

function main(argv: string[]): number {
  if (argv.length !== 2) {
    console.error("usage: wire-vectors VECTORS_JSON BASELINE_IMAGE");
    return 2;
  }
  const [vectorsPath, baselinePath] = argv;
  const { vectors } = JSON.parse(readFileSync(vectorsPath, "utf8")) as { vectors: Vector[] };
  const baseline = createFileRegistry(
    fromBinary(FileDescriptorSetSchema, readFileSync(baselinePath)),
  );
  const results = vectors.map((v) => roundTrip(v, { current, baseline }));
  process.stdout.write(JSON.stringify({ results }) + "\n");
  return 0;
}

process.exitCode = main(process.argv.slice(2));
