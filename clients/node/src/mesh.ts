// Connects a Node.js client to the meshkit-shop mesh: finds a service through Consul's
// health API, dials it over mutual TLS with a certificate of the mesh CA, and calls it
// with @grpc/grpc-js using the message and service descriptors protoc-gen-es generated
// into gen/ts. Retries on UNAVAILABLE come from the contracts' idempotency levels, as in
// the Python mesh (services/mesh/channels.py).
import { readFileSync } from "node:fs";
import { join } from "node:path";

import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

/** Where the mesh is: Consul's HTTP address and this client's ACL token, and this
 * client's cert.pem/key.pem/ca.pem. */
export interface MeshEnv {
  consulHttpAddr: string;
  consulHttpToken?: string;
  certDir: string;
}

/** CONSUL_HTTP_ADDR (default 127.0.0.1:8500), CONSUL_HTTP_TOKEN (Consul runs with ACLs on,
 * default deny: without a token the catalog shows nothing) and MESH_CERT_DIR (required). */
export function meshEnv(env: NodeJS.ProcessEnv = process.env): MeshEnv {
  const certDir = env.MESH_CERT_DIR;
  if (!certDir) {
    throw new Error("MESH_CERT_DIR is not set (a directory with cert.pem, key.pem, ca.pem)");
  }
  return {
    consulHttpAddr: env.CONSUL_HTTP_ADDR || "127.0.0.1:8500",
    consulHttpToken: env.CONSUL_HTTP_TOKEN || undefined,
    certDir,
  };
}

interface HealthEntry {
  Node: { Address: string };
  Service: { Address: string; Port: number };
}

/** host:port of one passing instance of `service`, from Consul's health API. */
export async function discover(env: MeshEnv, service: string): Promise<string> {
  const url = `http://${env.consulHttpAddr}/v1/health/service/${service}?passing=true`;
  const headers: Record<string, string> = env.consulHttpToken
    ? { "X-Consul-Token": env.consulHttpToken }
    : {};
  const resp = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  if (!resp.ok) {
    throw new Error(`consul: GET ${url}: ${resp.status} ${resp.statusText}`);
  }
  const entries = (await resp.json()) as HealthEntry[];
  if (entries.length === 0) {
    throw new Error(`consul: no passing instance of "${service}"`);
  }
  const { Node, Service } = entries[0];
  const host = Service.Address || Node.Address;
  return host.includes(":") ? `[${host}]:${Service.Port}` : `${host}:${Service.Port}`;
}

/** The gRPC service config with a retryPolicy for the methods the contract marks safe. */
export function retryServiceConfig(service: DescService): object {
  const safe = new Set([
    MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
    MethodOptions_IdempotencyLevel.IDEMPOTENT,
  ]);
  const name = service.methods
    .filter((m) => safe.has(m.idempotency))
    .map((m) => ({ service: service.typeName, method: m.name }));
  if (name.length === 0) {
    return {};
  }
  return {
    methodConfig: [
      {
        name,
        retryPolicy: {
          maxAttempts: 3,
          initialBackoff: "0.05s",
          maxBackoff: "0.5s",
          backoffMultiplier: 2,
          retryableStatusCodes: ["UNAVAILABLE"],
        },
      },
    ],
    retryThrottling: { maxTokens: 10, tokenRatio: 0.1 },
  };
}

/** Options of one call; the mesh rejects calls without a deadline or above 30 s. */
export interface CallOptions {
  timeoutMs: number;
  metadata?: grpc.Metadata;
}

type UnaryFn<M> =
  M extends DescMethod & { input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (request: MessageInitShape<I>, options: CallOptions) => Promise<MessageShape<O>>
    : never;

/** A client of `S`: one promise-returning function per unary method (by local name). */
export type UnaryClient<S extends DescService> = {
  [K in keyof S["method"] as S["method"][K] extends { methodKind: "unary" } ? K : never]: UnaryFn<
    S["method"][K]
  >;
} & { close(): void };

/** A typed client of `service` on a grpc-js channel (unary methods). */
export function createClient<S extends DescService>(
  service: S,
  channel: grpc.Client,
): UnaryClient<S> {
  const client: Record<string, unknown> = { close: () => channel.close() };
  for (const method of service.methods) {
    if (method.methodKind !== "unary") {
      continue;
    }
    const path = `/${service.typeName}/${method.name}`;
    client[method.localName] = (request: MessageInitShape<DescMessage>, options: CallOptions) =>
      new Promise((resolve, reject) => {
        channel.makeUnaryRequest(
          path,
          (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, msg)),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          create(method.input, request),
          options.metadata ?? new grpc.Metadata(),
          { deadline: new Date(Date.now() + options.timeoutMs) },
          (err, response) => (err ? reject(err) : resolve(response)),
        );
      });
  }
  return client as UnaryClient<S>;
}

/** Finds `name` in Consul and returns a client of `service` over mTLS. */
export async function dial<S extends DescService>(
  env: MeshEnv,
  name: string,
  service: S,
): Promise<UnaryClient<S>> {
  const address = await discover(env, name);
  const read = (file: string) => readFileSync(join(env.certDir, file));
  const credentials = grpc.credentials.createSsl(read("ca.pem"), read("key.pem"), read("cert.pem"));
  // The server's certificate names <name>.service.consul (and 127.0.0.1).
  const serverName = `${name}.service.consul`;
  const channel = new grpc.Client(address, credentials, {
    "grpc.ssl_target_name_override": serverName,
    "grpc.default_authority": serverName,
    "grpc.service_config": JSON.stringify(retryServiceConfig(service)),
  });
  return createClient(service, channel);
}
