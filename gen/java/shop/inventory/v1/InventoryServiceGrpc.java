package shop.inventory.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Owns stock levels and reservations. Reserve and release are idempotent per order.
 * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class InventoryServiceGrpc {

  private InventoryServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "shop.inventory.v1.InventoryService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.GetStockRequest,
      shop.inventory.v1.Inventory.GetStockResponse> getGetStockMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetStock",
      requestType = shop.inventory.v1.Inventory.GetStockRequest.class,
      responseType = shop.inventory.v1.Inventory.GetStockResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.GetStockRequest,
      shop.inventory.v1.Inventory.GetStockResponse> getGetStockMethod() {
    io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.GetStockRequest, shop.inventory.v1.Inventory.GetStockResponse> getGetStockMethod;
    if ((getGetStockMethod = InventoryServiceGrpc.getGetStockMethod) == null) {
      synchronized (InventoryServiceGrpc.class) {
        if ((getGetStockMethod = InventoryServiceGrpc.getGetStockMethod) == null) {
          InventoryServiceGrpc.getGetStockMethod = getGetStockMethod =
              io.grpc.MethodDescriptor.<shop.inventory.v1.Inventory.GetStockRequest, shop.inventory.v1.Inventory.GetStockResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetStock"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.GetStockRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.GetStockResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InventoryServiceMethodDescriptorSupplier("GetStock"))
              .build();
        }
      }
    }
    return getGetStockMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ListStockRequest,
      shop.inventory.v1.Inventory.ListStockResponse> getListStockMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListStock",
      requestType = shop.inventory.v1.Inventory.ListStockRequest.class,
      responseType = shop.inventory.v1.Inventory.ListStockResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ListStockRequest,
      shop.inventory.v1.Inventory.ListStockResponse> getListStockMethod() {
    io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ListStockRequest, shop.inventory.v1.Inventory.ListStockResponse> getListStockMethod;
    if ((getListStockMethod = InventoryServiceGrpc.getListStockMethod) == null) {
      synchronized (InventoryServiceGrpc.class) {
        if ((getListStockMethod = InventoryServiceGrpc.getListStockMethod) == null) {
          InventoryServiceGrpc.getListStockMethod = getListStockMethod =
              io.grpc.MethodDescriptor.<shop.inventory.v1.Inventory.ListStockRequest, shop.inventory.v1.Inventory.ListStockResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListStock"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.ListStockRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.ListStockResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InventoryServiceMethodDescriptorSupplier("ListStock"))
              .build();
        }
      }
    }
    return getListStockMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ReserveStockRequest,
      shop.inventory.v1.Inventory.ReserveStockResponse> getReserveStockMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ReserveStock",
      requestType = shop.inventory.v1.Inventory.ReserveStockRequest.class,
      responseType = shop.inventory.v1.Inventory.ReserveStockResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ReserveStockRequest,
      shop.inventory.v1.Inventory.ReserveStockResponse> getReserveStockMethod() {
    io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ReserveStockRequest, shop.inventory.v1.Inventory.ReserveStockResponse> getReserveStockMethod;
    if ((getReserveStockMethod = InventoryServiceGrpc.getReserveStockMethod) == null) {
      synchronized (InventoryServiceGrpc.class) {
        if ((getReserveStockMethod = InventoryServiceGrpc.getReserveStockMethod) == null) {
          InventoryServiceGrpc.getReserveStockMethod = getReserveStockMethod =
              io.grpc.MethodDescriptor.<shop.inventory.v1.Inventory.ReserveStockRequest, shop.inventory.v1.Inventory.ReserveStockResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ReserveStock"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.ReserveStockRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.ReserveStockResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InventoryServiceMethodDescriptorSupplier("ReserveStock"))
              .build();
        }
      }
    }
    return getReserveStockMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ReleaseStockRequest,
      shop.inventory.v1.Inventory.ReleaseStockResponse> getReleaseStockMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ReleaseStock",
      requestType = shop.inventory.v1.Inventory.ReleaseStockRequest.class,
      responseType = shop.inventory.v1.Inventory.ReleaseStockResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ReleaseStockRequest,
      shop.inventory.v1.Inventory.ReleaseStockResponse> getReleaseStockMethod() {
    io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.ReleaseStockRequest, shop.inventory.v1.Inventory.ReleaseStockResponse> getReleaseStockMethod;
    if ((getReleaseStockMethod = InventoryServiceGrpc.getReleaseStockMethod) == null) {
      synchronized (InventoryServiceGrpc.class) {
        if ((getReleaseStockMethod = InventoryServiceGrpc.getReleaseStockMethod) == null) {
          InventoryServiceGrpc.getReleaseStockMethod = getReleaseStockMethod =
              io.grpc.MethodDescriptor.<shop.inventory.v1.Inventory.ReleaseStockRequest, shop.inventory.v1.Inventory.ReleaseStockResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ReleaseStock"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.ReleaseStockRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.ReleaseStockResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InventoryServiceMethodDescriptorSupplier("ReleaseStock"))
              .build();
        }
      }
    }
    return getReleaseStockMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.CommitStockRequest,
      shop.inventory.v1.Inventory.CommitStockResponse> getCommitStockMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CommitStock",
      requestType = shop.inventory.v1.Inventory.CommitStockRequest.class,
      responseType = shop.inventory.v1.Inventory.CommitStockResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.CommitStockRequest,
      shop.inventory.v1.Inventory.CommitStockResponse> getCommitStockMethod() {
    io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.CommitStockRequest, shop.inventory.v1.Inventory.CommitStockResponse> getCommitStockMethod;
    if ((getCommitStockMethod = InventoryServiceGrpc.getCommitStockMethod) == null) {
      synchronized (InventoryServiceGrpc.class) {
        if ((getCommitStockMethod = InventoryServiceGrpc.getCommitStockMethod) == null) {
          InventoryServiceGrpc.getCommitStockMethod = getCommitStockMethod =
              io.grpc.MethodDescriptor.<shop.inventory.v1.Inventory.CommitStockRequest, shop.inventory.v1.Inventory.CommitStockResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CommitStock"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.CommitStockRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.CommitStockResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InventoryServiceMethodDescriptorSupplier("CommitStock"))
              .build();
        }
      }
    }
    return getCommitStockMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.AdjustStockRequest,
      shop.inventory.v1.Inventory.AdjustStockResponse> getAdjustStockMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "AdjustStock",
      requestType = shop.inventory.v1.Inventory.AdjustStockRequest.class,
      responseType = shop.inventory.v1.Inventory.AdjustStockResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.AdjustStockRequest,
      shop.inventory.v1.Inventory.AdjustStockResponse> getAdjustStockMethod() {
    io.grpc.MethodDescriptor<shop.inventory.v1.Inventory.AdjustStockRequest, shop.inventory.v1.Inventory.AdjustStockResponse> getAdjustStockMethod;
    if ((getAdjustStockMethod = InventoryServiceGrpc.getAdjustStockMethod) == null) {
      synchronized (InventoryServiceGrpc.class) {
        if ((getAdjustStockMethod = InventoryServiceGrpc.getAdjustStockMethod) == null) {
          InventoryServiceGrpc.getAdjustStockMethod = getAdjustStockMethod =
              io.grpc.MethodDescriptor.<shop.inventory.v1.Inventory.AdjustStockRequest, shop.inventory.v1.Inventory.AdjustStockResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "AdjustStock"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.AdjustStockRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.inventory.v1.Inventory.AdjustStockResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InventoryServiceMethodDescriptorSupplier("AdjustStock"))
              .build();
        }
      }
    }
    return getAdjustStockMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static InventoryServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InventoryServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InventoryServiceStub>() {
        @java.lang.Override
        public InventoryServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InventoryServiceStub(channel, callOptions);
        }
      };
    return InventoryServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static InventoryServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InventoryServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InventoryServiceBlockingV2Stub>() {
        @java.lang.Override
        public InventoryServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InventoryServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return InventoryServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static InventoryServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InventoryServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InventoryServiceBlockingStub>() {
        @java.lang.Override
        public InventoryServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InventoryServiceBlockingStub(channel, callOptions);
        }
      };
    return InventoryServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static InventoryServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InventoryServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InventoryServiceFutureStub>() {
        @java.lang.Override
        public InventoryServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InventoryServiceFutureStub(channel, callOptions);
        }
      };
    return InventoryServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Owns stock levels and reservations. Reserve and release are idempotent per order.
   * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Reads the stock of one sku.
     * </pre>
     */
    default void getStock(shop.inventory.v1.Inventory.GetStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.GetStockResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetStockMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists stock levels, ordered by sku.
     * </pre>
     */
    default void listStock(shop.inventory.v1.Inventory.ListStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ListStockResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListStockMethod(), responseObserver);
    }

    /**
     * <pre>
     * Reserves stock for every line of an order, all or nothing.
     * </pre>
     */
    default void reserveStock(shop.inventory.v1.Inventory.ReserveStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ReserveStockResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getReserveStockMethod(), responseObserver);
    }

    /**
     * <pre>
     * Gives an order's reserved stock back (compensation). No-op if nothing is reserved.
     * </pre>
     */
    default void releaseStock(shop.inventory.v1.Inventory.ReleaseStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ReleaseStockResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getReleaseStockMethod(), responseObserver);
    }

    /**
     * <pre>
     * Turns an order's reservation into a sale once the order is confirmed.
     * </pre>
     */
    default void commitStock(shop.inventory.v1.Inventory.CommitStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.CommitStockResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCommitStockMethod(), responseObserver);
    }

    /**
     * <pre>
     * Adds (or, with a negative delta, removes) available stock of a sku.
     * </pre>
     */
    default void adjustStock(shop.inventory.v1.Inventory.AdjustStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.AdjustStockResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getAdjustStockMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service InventoryService.
   * <pre>
   * Owns stock levels and reservations. Reserve and release are idempotent per order.
   * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
   * </pre>
   */
  public static abstract class InventoryServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return InventoryServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service InventoryService.
   * <pre>
   * Owns stock levels and reservations. Reserve and release are idempotent per order.
   * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
   * </pre>
   */
  public static final class InventoryServiceStub
      extends io.grpc.stub.AbstractAsyncStub<InventoryServiceStub> {
    private InventoryServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InventoryServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InventoryServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads the stock of one sku.
     * </pre>
     */
    public void getStock(shop.inventory.v1.Inventory.GetStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.GetStockResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetStockMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists stock levels, ordered by sku.
     * </pre>
     */
    public void listStock(shop.inventory.v1.Inventory.ListStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ListStockResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListStockMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Reserves stock for every line of an order, all or nothing.
     * </pre>
     */
    public void reserveStock(shop.inventory.v1.Inventory.ReserveStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ReserveStockResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getReserveStockMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Gives an order's reserved stock back (compensation). No-op if nothing is reserved.
     * </pre>
     */
    public void releaseStock(shop.inventory.v1.Inventory.ReleaseStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ReleaseStockResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getReleaseStockMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Turns an order's reservation into a sale once the order is confirmed.
     * </pre>
     */
    public void commitStock(shop.inventory.v1.Inventory.CommitStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.CommitStockResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCommitStockMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Adds (or, with a negative delta, removes) available stock of a sku.
     * </pre>
     */
    public void adjustStock(shop.inventory.v1.Inventory.AdjustStockRequest request,
        io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.AdjustStockResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getAdjustStockMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service InventoryService.
   * <pre>
   * Owns stock levels and reservations. Reserve and release are idempotent per order.
   * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
   * </pre>
   */
  public static final class InventoryServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<InventoryServiceBlockingV2Stub> {
    private InventoryServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InventoryServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InventoryServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads the stock of one sku.
     * </pre>
     */
    public shop.inventory.v1.Inventory.GetStockResponse getStock(shop.inventory.v1.Inventory.GetStockRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists stock levels, ordered by sku.
     * </pre>
     */
    public shop.inventory.v1.Inventory.ListStockResponse listStock(shop.inventory.v1.Inventory.ListStockRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reserves stock for every line of an order, all or nothing.
     * </pre>
     */
    public shop.inventory.v1.Inventory.ReserveStockResponse reserveStock(shop.inventory.v1.Inventory.ReserveStockRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getReserveStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Gives an order's reserved stock back (compensation). No-op if nothing is reserved.
     * </pre>
     */
    public shop.inventory.v1.Inventory.ReleaseStockResponse releaseStock(shop.inventory.v1.Inventory.ReleaseStockRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getReleaseStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Turns an order's reservation into a sale once the order is confirmed.
     * </pre>
     */
    public shop.inventory.v1.Inventory.CommitStockResponse commitStock(shop.inventory.v1.Inventory.CommitStockRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCommitStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Adds (or, with a negative delta, removes) available stock of a sku.
     * </pre>
     */
    public shop.inventory.v1.Inventory.AdjustStockResponse adjustStock(shop.inventory.v1.Inventory.AdjustStockRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getAdjustStockMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service InventoryService.
   * <pre>
   * Owns stock levels and reservations. Reserve and release are idempotent per order.
   * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
   * </pre>
   */
  public static final class InventoryServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<InventoryServiceBlockingStub> {
    private InventoryServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InventoryServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InventoryServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads the stock of one sku.
     * </pre>
     */
    public shop.inventory.v1.Inventory.GetStockResponse getStock(shop.inventory.v1.Inventory.GetStockRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists stock levels, ordered by sku.
     * </pre>
     */
    public shop.inventory.v1.Inventory.ListStockResponse listStock(shop.inventory.v1.Inventory.ListStockRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reserves stock for every line of an order, all or nothing.
     * </pre>
     */
    public shop.inventory.v1.Inventory.ReserveStockResponse reserveStock(shop.inventory.v1.Inventory.ReserveStockRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getReserveStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Gives an order's reserved stock back (compensation). No-op if nothing is reserved.
     * </pre>
     */
    public shop.inventory.v1.Inventory.ReleaseStockResponse releaseStock(shop.inventory.v1.Inventory.ReleaseStockRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getReleaseStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Turns an order's reservation into a sale once the order is confirmed.
     * </pre>
     */
    public shop.inventory.v1.Inventory.CommitStockResponse commitStock(shop.inventory.v1.Inventory.CommitStockRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCommitStockMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Adds (or, with a negative delta, removes) available stock of a sku.
     * </pre>
     */
    public shop.inventory.v1.Inventory.AdjustStockResponse adjustStock(shop.inventory.v1.Inventory.AdjustStockRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getAdjustStockMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service InventoryService.
   * <pre>
   * Owns stock levels and reservations. Reserve and release are idempotent per order.
   * Only the reads have REST routes (google.api.http): the rest is for the mesh's own services.
   * </pre>
   */
  public static final class InventoryServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<InventoryServiceFutureStub> {
    private InventoryServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InventoryServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InventoryServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Reads the stock of one sku.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.inventory.v1.Inventory.GetStockResponse> getStock(
        shop.inventory.v1.Inventory.GetStockRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetStockMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists stock levels, ordered by sku.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.inventory.v1.Inventory.ListStockResponse> listStock(
        shop.inventory.v1.Inventory.ListStockRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListStockMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Reserves stock for every line of an order, all or nothing.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.inventory.v1.Inventory.ReserveStockResponse> reserveStock(
        shop.inventory.v1.Inventory.ReserveStockRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getReserveStockMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Gives an order's reserved stock back (compensation). No-op if nothing is reserved.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.inventory.v1.Inventory.ReleaseStockResponse> releaseStock(
        shop.inventory.v1.Inventory.ReleaseStockRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getReleaseStockMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Turns an order's reservation into a sale once the order is confirmed.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.inventory.v1.Inventory.CommitStockResponse> commitStock(
        shop.inventory.v1.Inventory.CommitStockRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCommitStockMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Adds (or, with a negative delta, removes) available stock of a sku.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.inventory.v1.Inventory.AdjustStockResponse> adjustStock(
        shop.inventory.v1.Inventory.AdjustStockRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getAdjustStockMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_GET_STOCK = 0;
  private static final int METHODID_LIST_STOCK = 1;
  private static final int METHODID_RESERVE_STOCK = 2;
  private static final int METHODID_RELEASE_STOCK = 3;
  private static final int METHODID_COMMIT_STOCK = 4;
  private static final int METHODID_ADJUST_STOCK = 5;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_GET_STOCK:
          serviceImpl.getStock((shop.inventory.v1.Inventory.GetStockRequest) request,
              (io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.GetStockResponse>) responseObserver);
          break;
        case METHODID_LIST_STOCK:
          serviceImpl.listStock((shop.inventory.v1.Inventory.ListStockRequest) request,
              (io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ListStockResponse>) responseObserver);
          break;
        case METHODID_RESERVE_STOCK:
          serviceImpl.reserveStock((shop.inventory.v1.Inventory.ReserveStockRequest) request,
              (io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ReserveStockResponse>) responseObserver);
          break;
        case METHODID_RELEASE_STOCK:
          serviceImpl.releaseStock((shop.inventory.v1.Inventory.ReleaseStockRequest) request,
              (io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.ReleaseStockResponse>) responseObserver);
          break;
        case METHODID_COMMIT_STOCK:
          serviceImpl.commitStock((shop.inventory.v1.Inventory.CommitStockRequest) request,
              (io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.CommitStockResponse>) responseObserver);
          break;
        case METHODID_ADJUST_STOCK:
          serviceImpl.adjustStock((shop.inventory.v1.Inventory.AdjustStockRequest) request,
              (io.grpc.stub.StreamObserver<shop.inventory.v1.Inventory.AdjustStockResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getGetStockMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.inventory.v1.Inventory.GetStockRequest,
              shop.inventory.v1.Inventory.GetStockResponse>(
                service, METHODID_GET_STOCK)))
        .addMethod(
          getListStockMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.inventory.v1.Inventory.ListStockRequest,
              shop.inventory.v1.Inventory.ListStockResponse>(
                service, METHODID_LIST_STOCK)))
        .addMethod(
          getReserveStockMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.inventory.v1.Inventory.ReserveStockRequest,
              shop.inventory.v1.Inventory.ReserveStockResponse>(
                service, METHODID_RESERVE_STOCK)))
        .addMethod(
          getReleaseStockMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.inventory.v1.Inventory.ReleaseStockRequest,
              shop.inventory.v1.Inventory.ReleaseStockResponse>(
                service, METHODID_RELEASE_STOCK)))
        .addMethod(
          getCommitStockMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.inventory.v1.Inventory.CommitStockRequest,
              shop.inventory.v1.Inventory.CommitStockResponse>(
                service, METHODID_COMMIT_STOCK)))
        .addMethod(
          getAdjustStockMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.inventory.v1.Inventory.AdjustStockRequest,
              shop.inventory.v1.Inventory.AdjustStockResponse>(
                service, METHODID_ADJUST_STOCK)))
        .build();
  }

  private static abstract class InventoryServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    InventoryServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return shop.inventory.v1.Inventory.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("InventoryService");
    }
  }

  private static final class InventoryServiceFileDescriptorSupplier
      extends InventoryServiceBaseDescriptorSupplier {
    InventoryServiceFileDescriptorSupplier() {}
  }

  private static final class InventoryServiceMethodDescriptorSupplier
      extends InventoryServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    InventoryServiceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (InventoryServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new InventoryServiceFileDescriptorSupplier())
              .addMethod(getGetStockMethod())
              .addMethod(getListStockMethod())
              .addMethod(getReserveStockMethod())
              .addMethod(getReleaseStockMethod())
              .addMethod(getCommitStockMethod())
              .addMethod(getAdjustStockMethod())
              .build();
        }
      }
    }
    return result;
  }
}
