package meshkit.clients;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Decodes and re-encodes the contracts' wire-compatibility vectors
 * (contracts/vectors/vectors.json, written by scripts/contract_vectors.py) with Java:
 * "current" vectors with the classes generated from protos/ (gen/java), "next-release" vectors
 * with descriptors of the last release only (contracts/baseline/image.binpb, through
 * DynamicMessage), so that fields and enum values the release does not know must survive as
 * unknown. It prints {"results": [{"id", "wire"}]} (wire in base64) for
 * tests/contracts/test_wire_vectors.py to compare; it judges nothing itself.
 *
 * <pre>
 * java -cp target/place-order.jar meshkit.clients.WireVectors VECTORS_JSON BASELINE_IMAGE
 * </pre>
 */
public final class WireVectors {
  /** The outer classes generated for every file of protos/ (each holds its file's messages). */
  private static final Class<?>[] GENERATED = {
    shop.common.v1.AddressOuterClass.class,
    shop.common.v1.LineItemOuterClass.class,
    shop.common.v1.MoneyOuterClass.class,
    shop.events.v1.Envelope.class,
    shop.events.v1.Events.class,
    shop.inventory.v1.Inventory.class,
    shop.order.v1.OrderOuterClass.class,
    shop.payment.v1.PaymentOuterClass.class,
    shop.shipping.v1.Shipping.class,
  };

  public static void main(String[] args) {
    if (args.length != 2) {
      System.err.println("usage: WireVectors VECTORS_JSON BASELINE_IMAGE");
      System.exit(2);
    }
    try {
      System.out.println(run(Path.of(args[0]), Path.of(args[1])));
    } catch (Exception e) {
      System.err.println("wire-vectors (java): " + e);
      System.exit(1);
    }
  }

  static String run(Path vectorsPath, Path baselinePath) throws Exception {
    Map<String, Message> current = new HashMap<>();
    for (Class<?> outer : GENERATED) {
      FileDescriptor file = (FileDescriptor) outer.getMethod("getDescriptor").invoke(null);
      for (Descriptor type : file.getMessageTypes()) {
        addGenerated(outer, file, type, current);
      }
    }
    Map<String, Descriptor> baseline = loadImage(baselinePath);
    JsonObject file =
        new Gson()
            .fromJson(Files.readString(vectorsPath, StandardCharsets.UTF_8), JsonObject.class);
    JsonArray results = new JsonArray();
    for (JsonElement element : file.getAsJsonArray("vectors")) {
      JsonObject v = element.getAsJsonObject();
      JsonObject r = new JsonObject();
      r.addProperty("id", v.get("id").getAsString());
      try {
        byte[] wire = Base64.getDecoder().decode(v.get("wire").getAsString());
        byte[] again = roundTrip(v, wire, current, baseline);
        r.addProperty("wire", Base64.getEncoder().encodeToString(again));
      } catch (Exception e) {
        r.addProperty("error", e.toString());
      }
      results.add(r);
    }
    JsonObject out = new JsonObject();
    out.add("results", results);
    return out.toString();
  }

  /** The generated class of {@code type} (and of its nested types), by full name. */
  private static void addGenerated(
      Class<?> outer, FileDescriptor file, Descriptor type, Map<String, Message> out)
      throws ReflectiveOperationException {
    String nested = type.getFullName().substring(file.getPackage().length() + 1).replace('.', '$');
    Class<?> cls = Class.forName(outer.getName() + "$" + nested);
    out.put(type.getFullName(), (Message) cls.getMethod("getDefaultInstance").invoke(null));
    for (Descriptor inner : type.getNestedTypes()) {
      if (!inner.getOptions().getMapEntry()) {
        addGenerated(outer, file, inner, out);
      }
    }
  }

  /** The message types of a buf image (a FileDescriptorSet with every import), by full name. */
  private static Map<String, Descriptor> loadImage(Path path) throws Exception {
    FileDescriptorSet set = FileDescriptorSet.parseFrom(Files.readAllBytes(path));
    Map<String, FileDescriptorProto> protos = new HashMap<>();
    for (FileDescriptorProto p : set.getFileList()) {
      protos.put(p.getName(), p);
    }
    Map<String, FileDescriptor> built = new HashMap<>();
    Map<String, Descriptor> types = new HashMap<>();
    for (FileDescriptorProto p : set.getFileList()) {
      for (Descriptor d : build(p.getName(), protos, built).getMessageTypes()) {
        addTypes(d, types);
      }
    }
    return types;
  }

  private static FileDescriptor build(
      String name, Map<String, FileDescriptorProto> protos, Map<String, FileDescriptor> built)
      throws Exception {
    FileDescriptor done = built.get(name);
    if (done != null) {
      return done;
    }
    FileDescriptorProto proto = protos.get(name);
    if (proto == null) {
      throw new IllegalArgumentException("the image lacks " + name);
    }
    List<FileDescriptor> deps = new ArrayList<>();
    for (String dep : proto.getDependencyList()) {
      deps.add(build(dep, protos, built));
    }
    FileDescriptor file = FileDescriptor.buildFrom(proto, deps.toArray(new FileDescriptor[0]));
    built.put(name, file);
    return file;
  }

  private static void addTypes(Descriptor d, Map<String, Descriptor> out) {
    out.put(d.getFullName(), d);
    for (Descriptor inner : d.getNestedTypes()) {
      addTypes(inner, out);
    }
  }

  /** Decodes {@code wire} with the vector's reader and encodes it again, deterministically. */
  private static byte[] roundTrip(
      JsonObject v, byte[] wire, Map<String, Message> current, Map<String, Descriptor> baseline)
      throws IOException {
    String type = v.get("type").getAsString();
    String reader = v.get("reader").getAsString();
    Message msg;
    switch (reader) {
      case "current" -> {
        Message prototype = current.get(type);
        if (prototype == null) {
          throw new IllegalArgumentException("no generated class for " + type);
        }
        msg = prototype.getParserForType().parseFrom(wire);
      }
      case "baseline" -> {
        Descriptor d = baseline.get(type);
        if (d == null) {
          throw new IllegalArgumentException(type + " is not in the baseline image");
        }
        msg = DynamicMessage.parseFrom(d, wire);
      }
      default -> throw new IllegalArgumentException("unknown reader " + reader);
    }
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    CodedOutputStream out = CodedOutputStream.newInstance(bytes);
    out.useDeterministicSerialization();
    msg.writeTo(out);
    out.flush();
    return bytes.toByteArray();
  }

  private WireVectors() {}
}
