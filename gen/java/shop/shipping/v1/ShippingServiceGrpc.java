package shop.shipping.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Schedules shipments. Scheduling is idempotent per order.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class ShippingServiceGrpc {

  private ShippingServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "shop.shipping.v1.ShippingService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.ScheduleShipmentRequest,
      shop.shipping.v1.Shipping.ScheduleShipmentResponse> getScheduleShipmentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ScheduleShipment",
      requestType = shop.shipping.v1.Shipping.ScheduleShipmentRequest.class,
      responseType = shop.shipping.v1.Shipping.ScheduleShipmentResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.ScheduleShipmentRequest,
      shop.shipping.v1.Shipping.ScheduleShipmentResponse> getScheduleShipmentMethod() {
    io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.ScheduleShipmentRequest, shop.shipping.v1.Shipping.ScheduleShipmentResponse> getScheduleShipmentMethod;
    if ((getScheduleShipmentMethod = ShippingServiceGrpc.getScheduleShipmentMethod) == null) {
      synchronized (ShippingServiceGrpc.class) {
        if ((getScheduleShipmentMethod = ShippingServiceGrpc.getScheduleShipmentMethod) == null) {
          ShippingServiceGrpc.getScheduleShipmentMethod = getScheduleShipmentMethod =
              io.grpc.MethodDescriptor.<shop.shipping.v1.Shipping.ScheduleShipmentRequest, shop.shipping.v1.Shipping.ScheduleShipmentResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ScheduleShipment"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.shipping.v1.Shipping.ScheduleShipmentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.shipping.v1.Shipping.ScheduleShipmentResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ShippingServiceMethodDescriptorSupplier("ScheduleShipment"))
              .build();
        }
      }
    }
    return getScheduleShipmentMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.CancelShipmentRequest,
      shop.shipping.v1.Shipping.CancelShipmentResponse> getCancelShipmentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CancelShipment",
      requestType = shop.shipping.v1.Shipping.CancelShipmentRequest.class,
      responseType = shop.shipping.v1.Shipping.CancelShipmentResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.CancelShipmentRequest,
      shop.shipping.v1.Shipping.CancelShipmentResponse> getCancelShipmentMethod() {
    io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.CancelShipmentRequest, shop.shipping.v1.Shipping.CancelShipmentResponse> getCancelShipmentMethod;
    if ((getCancelShipmentMethod = ShippingServiceGrpc.getCancelShipmentMethod) == null) {
      synchronized (ShippingServiceGrpc.class) {
        if ((getCancelShipmentMethod = ShippingServiceGrpc.getCancelShipmentMethod) == null) {
          ShippingServiceGrpc.getCancelShipmentMethod = getCancelShipmentMethod =
              io.grpc.MethodDescriptor.<shop.shipping.v1.Shipping.CancelShipmentRequest, shop.shipping.v1.Shipping.CancelShipmentResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CancelShipment"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.shipping.v1.Shipping.CancelShipmentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.shipping.v1.Shipping.CancelShipmentResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ShippingServiceMethodDescriptorSupplier("CancelShipment"))
              .build();
        }
      }
    }
    return getCancelShipmentMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.GetShipmentRequest,
      shop.shipping.v1.Shipping.GetShipmentResponse> getGetShipmentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetShipment",
      requestType = shop.shipping.v1.Shipping.GetShipmentRequest.class,
      responseType = shop.shipping.v1.Shipping.GetShipmentResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.GetShipmentRequest,
      shop.shipping.v1.Shipping.GetShipmentResponse> getGetShipmentMethod() {
    io.grpc.MethodDescriptor<shop.shipping.v1.Shipping.GetShipmentRequest, shop.shipping.v1.Shipping.GetShipmentResponse> getGetShipmentMethod;
    if ((getGetShipmentMethod = ShippingServiceGrpc.getGetShipmentMethod) == null) {
      synchronized (ShippingServiceGrpc.class) {
        if ((getGetShipmentMethod = ShippingServiceGrpc.getGetShipmentMethod) == null) {
          ShippingServiceGrpc.getGetShipmentMethod = getGetShipmentMethod =
              io.grpc.MethodDescriptor.<shop.shipping.v1.Shipping.GetShipmentRequest, shop.shipping.v1.Shipping.GetShipmentResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetShipment"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.shipping.v1.Shipping.GetShipmentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.shipping.v1.Shipping.GetShipmentResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ShippingServiceMethodDescriptorSupplier("GetShipment"))
              .build();
        }
      }
    }
    return getGetShipmentMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static ShippingServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ShippingServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ShippingServiceStub>() {
        @java.lang.Override
        public ShippingServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ShippingServiceStub(channel, callOptions);
        }
      };
    return ShippingServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static ShippingServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ShippingServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ShippingServiceBlockingV2Stub>() {
        @java.lang.Override
        public ShippingServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ShippingServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return ShippingServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static ShippingServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ShippingServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ShippingServiceBlockingStub>() {
        @java.lang.Override
        public ShippingServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ShippingServiceBlockingStub(channel, callOptions);
        }
      };
    return ShippingServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static ShippingServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ShippingServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ShippingServiceFutureStub>() {
        @java.lang.Override
        public ShippingServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ShippingServiceFutureStub(channel, callOptions);
        }
      };
    return ShippingServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Schedules shipments. Scheduling is idempotent per order.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Schedules the shipment of an order to an address.
     * </pre>
     */
    default void scheduleShipment(shop.shipping.v1.Shipping.ScheduleShipmentRequest request,
        io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.ScheduleShipmentResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getScheduleShipmentMethod(), responseObserver);
    }

    /**
     * <pre>
     * Cancels a scheduled shipment (compensation). No-op if already cancelled.
     * </pre>
     */
    default void cancelShipment(shop.shipping.v1.Shipping.CancelShipmentRequest request,
        io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.CancelShipmentResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCancelShipmentMethod(), responseObserver);
    }

    /**
     * <pre>
     * Reads one shipment.
     * </pre>
     */
    default void getShipment(shop.shipping.v1.Shipping.GetShipmentRequest request,
        io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.GetShipmentResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetShipmentMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service ShippingService.
   * <pre>
   * Schedules shipments. Scheduling is idempotent per order.
   * </pre>
   */
  public static abstract class ShippingServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return ShippingServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service ShippingService.
   * <pre>
   * Schedules shipments. Scheduling is idempotent per order.
   * </pre>
   */
  public static final class ShippingServiceStub
      extends io.grpc.stub.AbstractAsyncStub<ShippingServiceStub> {
    private ShippingServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ShippingServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ShippingServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Schedules the shipment of an order to an address.
     * </pre>
     */
    public void scheduleShipment(shop.shipping.v1.Shipping.ScheduleShipmentRequest request,
        io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.ScheduleShipmentResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getScheduleShipmentMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Cancels a scheduled shipment (compensation). No-op if already cancelled.
     * </pre>
     */
    public void cancelShipment(shop.shipping.v1.Shipping.CancelShipmentRequest request,
        io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.CancelShipmentResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCancelShipmentMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Reads one shipment.
     * </pre>
     */
    public void getShipment(shop.shipping.v1.Shipping.GetShipmentRequest request,
        io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.GetShipmentResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetShipmentMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service ShippingService.
   * <pre>
   * Schedules shipments. Scheduling is idempotent per order.
   * </pre>
   */
  public static final class ShippingServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<ShippingServiceBlockingV2Stub> {
    private ShippingServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ShippingServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ShippingServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Schedules the shipment of an order to an address.
     * </pre>
     */
    public shop.shipping.v1.Shipping.ScheduleShipmentResponse scheduleShipment(shop.shipping.v1.Shipping.ScheduleShipmentRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getScheduleShipmentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Cancels a scheduled shipment (compensation). No-op if already cancelled.
     * </pre>
     */
    public shop.shipping.v1.Shipping.CancelShipmentResponse cancelShipment(shop.shipping.v1.Shipping.CancelShipmentRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCancelShipmentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one shipment.
     * </pre>
     */
    public shop.shipping.v1.Shipping.GetShipmentResponse getShipment(shop.shipping.v1.Shipping.GetShipmentRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetShipmentMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service ShippingService.
   * <pre>
   * Schedules shipments. Scheduling is idempotent per order.
   * </pre>
   */
  public static final class ShippingServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<ShippingServiceBlockingStub> {
    private ShippingServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ShippingServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ShippingServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Schedules the shipment of an order to an address.
     * </pre>
     */
    public shop.shipping.v1.Shipping.ScheduleShipmentResponse scheduleShipment(shop.shipping.v1.Shipping.ScheduleShipmentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getScheduleShipmentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Cancels a scheduled shipment (compensation). No-op if already cancelled.
     * </pre>
     */
    public shop.shipping.v1.Shipping.CancelShipmentResponse cancelShipment(shop.shipping.v1.Shipping.CancelShipmentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCancelShipmentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one shipment.
     * </pre>
     */
    public shop.shipping.v1.Shipping.GetShipmentResponse getShipment(shop.shipping.v1.Shipping.GetShipmentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetShipmentMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service ShippingService.
   * <pre>
   * Schedules shipments. Scheduling is idempotent per order.
   * </pre>
   */
  public static final class ShippingServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<ShippingServiceFutureStub> {
    private ShippingServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ShippingServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ShippingServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Schedules the shipment of an order to an address.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.shipping.v1.Shipping.ScheduleShipmentResponse> scheduleShipment(
        shop.shipping.v1.Shipping.ScheduleShipmentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getScheduleShipmentMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Cancels a scheduled shipment (compensation). No-op if already cancelled.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.shipping.v1.Shipping.CancelShipmentResponse> cancelShipment(
        shop.shipping.v1.Shipping.CancelShipmentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCancelShipmentMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Reads one shipment.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.shipping.v1.Shipping.GetShipmentResponse> getShipment(
        shop.shipping.v1.Shipping.GetShipmentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetShipmentMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_SCHEDULE_SHIPMENT = 0;
  private static final int METHODID_CANCEL_SHIPMENT = 1;
  private static final int METHODID_GET_SHIPMENT = 2;

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
        case METHODID_SCHEDULE_SHIPMENT:
          serviceImpl.scheduleShipment((shop.shipping.v1.Shipping.ScheduleShipmentRequest) request,
              (io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.ScheduleShipmentResponse>) responseObserver);
          break;
        case METHODID_CANCEL_SHIPMENT:
          serviceImpl.cancelShipment((shop.shipping.v1.Shipping.CancelShipmentRequest) request,
              (io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.CancelShipmentResponse>) responseObserver);
          break;
        case METHODID_GET_SHIPMENT:
          serviceImpl.getShipment((shop.shipping.v1.Shipping.GetShipmentRequest) request,
              (io.grpc.stub.StreamObserver<shop.shipping.v1.Shipping.GetShipmentResponse>) responseObserver);
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
          getScheduleShipmentMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.shipping.v1.Shipping.ScheduleShipmentRequest,
              shop.shipping.v1.Shipping.ScheduleShipmentResponse>(
                service, METHODID_SCHEDULE_SHIPMENT)))
        .addMethod(
          getCancelShipmentMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.shipping.v1.Shipping.CancelShipmentRequest,
              shop.shipping.v1.Shipping.CancelShipmentResponse>(
                service, METHODID_CANCEL_SHIPMENT)))
        .addMethod(
          getGetShipmentMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.shipping.v1.Shipping.GetShipmentRequest,
              shop.shipping.v1.Shipping.GetShipmentResponse>(
                service, METHODID_GET_SHIPMENT)))
        .build();
  }

  private static abstract class ShippingServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    ShippingServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return shop.shipping.v1.Shipping.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("ShippingService");
    }
  }

  private static final class ShippingServiceFileDescriptorSupplier
      extends ShippingServiceBaseDescriptorSupplier {
    ShippingServiceFileDescriptorSupplier() {}
  }

  private static final class ShippingServiceMethodDescriptorSupplier
      extends ShippingServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    ShippingServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (ShippingServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new ShippingServiceFileDescriptorSupplier())
              .addMethod(getScheduleShipmentMethod())
              .addMethod(getCancelShipmentMethod())
              .addMethod(getGetShipmentMethod())
              .build();
        }
      }
    }
    return result;
  }
}
