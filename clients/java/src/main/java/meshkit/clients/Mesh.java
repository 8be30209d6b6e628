package meshkit.clients;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.DescriptorProtos.MethodOptions.IdempotencyLevel;
import com.google.protobuf.Descriptors.MethodDescriptor;
import com.google.protobuf.Descriptors.ServiceDescriptor;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;

/**
 * Connects a Java client to the meshkit-shop mesh: finds a service through Consul's health
 * API, dials it over mutual TLS with a certificate of the mesh CA, and derives the gRPC retry
 * policy from the contracts' idempotency levels (as meshkit/rpc/channels.py does).
 */
public final class Mesh {
  private final String consulHttpAddr;
  private final String consulHttpToken;
  private final File certDir;

  public Mesh(String consulHttpAddr, String consulHttpToken, File certDir) {
    this.consulHttpAddr = consulHttpAddr;
    this.consulHttpToken = consulHttpToken;
    this.certDir = certDir;
  }

  /**
   * CONSUL_HTTP_ADDR (default 127.0.0.1:8500), CONSUL_HTTP_TOKEN (Consul runs with ACLs on,
   * default deny: without a token the catalog shows nothing) and MESH_CERT_DIR (required).
   */
  public static Mesh fromEnv() {
    String consul = System.getenv().getOrDefault("CONSUL_HTTP_ADDR", "");
    String token = System.getenv().getOrDefault("CONSUL_HTTP_TOKEN", "");
    String certDir = System.getenv().getOrDefault("MESH_CERT_DIR", "");
    if (certDir.isEmpty()) {
      throw new IllegalStateException(
          "MESH_CERT_DIR is not set (a directory with cert.pem, key.pem, ca.pem)");
    }
    return new Mesh(consul.isEmpty() ? "127.0.0.1:8500" : consul, token, new File(certDir));
  }

  private HttpRequest.Builder withToken(HttpRequest.Builder request) {
    return consulHttpToken.isEmpty() ? request : request.header("X-Consul-Token", consulHttpToken);
  }

  /** Host and port of one passing instance of {@code service}, from Consul's health API. */
  public Map.Entry<String, Integer> discover(String service)
      throws IOException, InterruptedException {
    URI uri =
        URI.create(
            "http://" + consulHttpAddr + "/v1/health/service/" + service + "?passing=true");
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    HttpResponse<String> resp =
        http.send(
            withToken(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(5)).GET()).build(),
            HttpResponse.BodyHandlers.ofString());
    if (resp.statusCode() != 200) {
      throw new IOException("consul: GET " + uri + ": " + resp.statusCode());
    }
    JsonArray entries = JsonParser.parseString(resp.body()).getAsJsonArray();
    if (entries.isEmpty()) {
      throw new IOException("consul: no passing instance of \"" + service + "\"");
    }
    JsonObject entry = entries.get(0).getAsJsonObject();
    JsonObject svc = entry.getAsJsonObject("Service");
    String host = svc.get("Address").getAsString();
    if (host.isEmpty()) {
      host = entry.getAsJsonObject("Node").get("Address").getAsString();
    }
    return Map.entry(host, svc.get("Port").getAsInt());
  }

  /** Finds {@code name} in Consul and opens a channel to it over mTLS. */
  public ManagedChannel dial(String name, ServiceDescriptor service)
      throws IOException, InterruptedException {
    Map.Entry<String, Integer> address = discover(name);
    ChannelCredentials credentials =
        TlsChannelCredentials.newBuilder()
            .keyManager(new File(certDir, "cert.pem"), new File(certDir, "key.pem"))
            .trustManager(new File(certDir, "ca.pem"))
            .build();
    return Grpc.newChannelBuilderForAddress(address.getKey(), address.getValue(), credentials)
        // The server's certificate names <name>.service.consul (and 127.0.0.1).
        .overrideAuthority(name + ".service.consul")
        .defaultServiceConfig(retryServiceConfig(service))
        .enableRetry()
        .build();
  }

  /** A retryPolicy on UNAVAILABLE for each method whose idempotency_level says it is safe. */
  public static Map<String, ?> retryServiceConfig(ServiceDescriptor service) {
    EnumSet<IdempotencyLevel> safe =
        EnumSet.of(IdempotencyLevel.NO_SIDE_EFFECTS, IdempotencyLevel.IDEMPOTENT);
    List<Map<String, ?>> names = new ArrayList<>();
    for (MethodDescriptor m : service.getMethods()) {
      if (safe.contains(m.getOptions().getIdempotencyLevel())) {
        names.add(Map.of("service", service.getFullName(), "method", m.getName()));
      }
    }
    if (names.isEmpty()) {
      return Map.of();
    }
    // grpc-java reads service configs as parsed JSON: numbers are Doubles.
    Map<String, ?> retryPolicy =
        Map.of(
            "maxAttempts", 3.0,
            "initialBackoff", "0.05s",
            "maxBackoff", "0.5s",
            "backoffMultiplier", 2.0,
            "retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of(
        "methodConfig", List.of(Map.of("name", names, "retryPolicy", retryPolicy)),
        "retryThrottling", Map.of("maxTokens", 10.0, "tokenRatio", 0.1));
  }
}
