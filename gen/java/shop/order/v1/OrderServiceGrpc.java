package shop.order.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Places orders and answers questions about them. The public face of the shop.
 * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
 * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
 * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class OrderServiceGrpc {

  private OrderServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "shop.order.v1.OrderService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.PlaceOrderRequest,
      shop.order.v1.OrderOuterClass.PlaceOrderResponse> getPlaceOrderMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "PlaceOrder",
      requestType = shop.order.v1.OrderOuterClass.PlaceOrderRequest.class,
      responseType = shop.order.v1.OrderOuterClass.PlaceOrderResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.PlaceOrderRequest,
      shop.order.v1.OrderOuterClass.PlaceOrderResponse> getPlaceOrderMethod() {
    io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.PlaceOrderRequest, shop.order.v1.OrderOuterClass.PlaceOrderResponse> getPlaceOrderMethod;
    if ((getPlaceOrderMethod = OrderServiceGrpc.getPlaceOrderMethod) == null) {
      synchronized (OrderServiceGrpc.class) {
        if ((getPlaceOrderMethod = OrderServiceGrpc.getPlaceOrderMethod) == null) {
          OrderServiceGrpc.getPlaceOrderMethod = getPlaceOrderMethod =
              io.grpc.MethodDescriptor.<shop.order.v1.OrderOuterClass.PlaceOrderRequest, shop.order.v1.OrderOuterClass.PlaceOrderResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "PlaceOrder"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.PlaceOrderRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.PlaceOrderResponse.getDefaultInstance()))
              .setSchemaDescriptor(new OrderServiceMethodDescriptorSupplier("PlaceOrder"))
              .build();
        }
      }
    }
    return getPlaceOrderMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.GetOrderRequest,
      shop.order.v1.OrderOuterClass.GetOrderResponse> getGetOrderMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetOrder",
      requestType = shop.order.v1.OrderOuterClass.GetOrderRequest.class,
      responseType = shop.order.v1.OrderOuterClass.GetOrderResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.GetOrderRequest,
      shop.order.v1.OrderOuterClass.GetOrderResponse> getGetOrderMethod() {
    io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.GetOrderRequest, shop.order.v1.OrderOuterClass.GetOrderResponse> getGetOrderMethod;
    if ((getGetOrderMethod = OrderServiceGrpc.getGetOrderMethod) == null) {
      synchronized (OrderServiceGrpc.class) {
        if ((getGetOrderMethod = OrderServiceGrpc.getGetOrderMethod) == null) {
          OrderServiceGrpc.getGetOrderMethod = getGetOrderMethod =
              io.grpc.MethodDescriptor.<shop.order.v1.OrderOuterClass.GetOrderRequest, shop.order.v1.OrderOuterClass.GetOrderResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetOrder"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.GetOrderRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.GetOrderResponse.getDefaultInstance()))
              .setSchemaDescriptor(new OrderServiceMethodDescriptorSupplier("GetOrder"))
              .build();
        }
      }
    }
    return getGetOrderMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.ListOrdersRequest,
      shop.order.v1.OrderOuterClass.ListOrdersResponse> getListOrdersMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListOrders",
      requestType = shop.order.v1.OrderOuterClass.ListOrdersRequest.class,
      responseType = shop.order.v1.OrderOuterClass.ListOrdersResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.ListOrdersRequest,
      shop.order.v1.OrderOuterClass.ListOrdersResponse> getListOrdersMethod() {
    io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.ListOrdersRequest, shop.order.v1.OrderOuterClass.ListOrdersResponse> getListOrdersMethod;
    if ((getListOrdersMethod = OrderServiceGrpc.getListOrdersMethod) == null) {
      synchronized (OrderServiceGrpc.class) {
        if ((getListOrdersMethod = OrderServiceGrpc.getListOrdersMethod) == null) {
          OrderServiceGrpc.getListOrdersMethod = getListOrdersMethod =
              io.grpc.MethodDescriptor.<shop.order.v1.OrderOuterClass.ListOrdersRequest, shop.order.v1.OrderOuterClass.ListOrdersResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListOrders"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.ListOrdersRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.ListOrdersResponse.getDefaultInstance()))
              .setSchemaDescriptor(new OrderServiceMethodDescriptorSupplier("ListOrders"))
              .build();
        }
      }
    }
    return getListOrdersMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.WatchOrderRequest,
      shop.order.v1.OrderOuterClass.WatchOrderResponse> getWatchOrderMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "WatchOrder",
      requestType = shop.order.v1.OrderOuterClass.WatchOrderRequest.class,
      responseType = shop.order.v1.OrderOuterClass.WatchOrderResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.WatchOrderRequest,
      shop.order.v1.OrderOuterClass.WatchOrderResponse> getWatchOrderMethod() {
    io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.WatchOrderRequest, shop.order.v1.OrderOuterClass.WatchOrderResponse> getWatchOrderMethod;
    if ((getWatchOrderMethod = OrderServiceGrpc.getWatchOrderMethod) == null) {
      synchronized (OrderServiceGrpc.class) {
        if ((getWatchOrderMethod = OrderServiceGrpc.getWatchOrderMethod) == null) {
          OrderServiceGrpc.getWatchOrderMethod = getWatchOrderMethod =
              io.grpc.MethodDescriptor.<shop.order.v1.OrderOuterClass.WatchOrderRequest, shop.order.v1.OrderOuterClass.WatchOrderResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "WatchOrder"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.WatchOrderRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.WatchOrderResponse.getDefaultInstance()))
              .setSchemaDescriptor(new OrderServiceMethodDescriptorSupplier("WatchOrder"))
              .build();
        }
      }
    }
    return getWatchOrderMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.CancelOrderRequest,
      shop.order.v1.OrderOuterClass.CancelOrderResponse> getCancelOrderMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CancelOrder",
      requestType = shop.order.v1.OrderOuterClass.CancelOrderRequest.class,
      responseType = shop.order.v1.OrderOuterClass.CancelOrderResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.CancelOrderRequest,
      shop.order.v1.OrderOuterClass.CancelOrderResponse> getCancelOrderMethod() {
    io.grpc.MethodDescriptor<shop.order.v1.OrderOuterClass.CancelOrderRequest, shop.order.v1.OrderOuterClass.CancelOrderResponse> getCancelOrderMethod;
    if ((getCancelOrderMethod = OrderServiceGrpc.getCancelOrderMethod) == null) {
      synchronized (OrderServiceGrpc.class) {
        if ((getCancelOrderMethod = OrderServiceGrpc.getCancelOrderMethod) == null) {
          OrderServiceGrpc.getCancelOrderMethod = getCancelOrderMethod =
              io.grpc.MethodDescriptor.<shop.order.v1.OrderOuterClass.CancelOrderRequest, shop.order.v1.OrderOuterClass.CancelOrderResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CancelOrder"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.CancelOrderRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.order.v1.OrderOuterClass.CancelOrderResponse.getDefaultInstance()))
              .setSchemaDescriptor(new OrderServiceMethodDescriptorSupplier("CancelOrder"))
              .build();
        }
      }
    }
    return getCancelOrderMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static OrderServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<OrderServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<OrderServiceStub>() {
        @java.lang.Override
        public OrderServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new OrderServiceStub(channel, callOptions);
        }
      };
    return OrderServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static OrderServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<OrderServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<OrderServiceBlockingV2Stub>() {
        @java.lang.Override
        public OrderServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new OrderServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return OrderServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static OrderServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<OrderServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<OrderServiceBlockingStub>() {
        @java.lang.Override
        public OrderServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new OrderServiceBlockingStub(channel, callOptions);
        }
      };
    return OrderServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static OrderServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<OrderServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<OrderServiceFutureStub>() {
        @java.lang.Override
        public OrderServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new OrderServiceFutureStub(channel, callOptions);
        }
      };
    return OrderServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Places orders and answers questions about them. The public face of the shop.
   * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
   * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
   * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Places an order. Retrying with the same idempotency_key returns the same order.
     * </pre>
     */
    default void placeOrder(shop.order.v1.OrderOuterClass.PlaceOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.PlaceOrderResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPlaceOrderMethod(), responseObserver);
    }

    /**
     * <pre>
     * Reads one order.
     * </pre>
     */
    default void getOrder(shop.order.v1.OrderOuterClass.GetOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.GetOrderResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetOrderMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists orders, newest first, optionally filtered by customer and status.
     * </pre>
     */
    default void listOrders(shop.order.v1.OrderOuterClass.ListOrdersRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.ListOrdersResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListOrdersMethod(), responseObserver);
    }

    /**
     * <pre>
     * Streams the order's state: the current state first, then every change until it is final.
     * </pre>
     */
    default void watchOrder(shop.order.v1.OrderOuterClass.WatchOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.WatchOrderResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getWatchOrderMethod(), responseObserver);
    }

    /**
     * <pre>
     * Cancels an order that is not final yet, releasing stock and refunding payment.
     * </pre>
     */
    default void cancelOrder(shop.order.v1.OrderOuterClass.CancelOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.CancelOrderResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCancelOrderMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service OrderService.
   * <pre>
   * Places orders and answers questions about them. The public face of the shop.
   * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
   * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
   * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
   * </pre>
   */
  public static abstract class OrderServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return OrderServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service OrderService.
   * <pre>
   * Places orders and answers questions about them. The public face of the shop.
   * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
   * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
   * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
   * </pre>
   */
  public static final class OrderServiceStub
      extends io.grpc.stub.AbstractAsyncStub<OrderServiceStub> {
    private OrderServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected OrderServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new OrderServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Places an order. Retrying with the same idempotency_key returns the same order.
     * </pre>
     */
    public void placeOrder(shop.order.v1.OrderOuterClass.PlaceOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.PlaceOrderResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPlaceOrderMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Reads one order.
     * </pre>
     */
    public void getOrder(shop.order.v1.OrderOuterClass.GetOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.GetOrderResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetOrderMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists orders, newest first, optionally filtered by customer and status.
     * </pre>
     */
    public void listOrders(shop.order.v1.OrderOuterClass.ListOrdersRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.ListOrdersResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListOrdersMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Streams the order's state: the current state first, then every change until it is final.
     * </pre>
     */
    public void watchOrder(shop.order.v1.OrderOuterClass.WatchOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.WatchOrderResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getWatchOrderMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Cancels an order that is not final yet, releasing stock and refunding payment.
     * </pre>
     */
    public void cancelOrder(shop.order.v1.OrderOuterClass.CancelOrderRequest request,
        io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.CancelOrderResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCancelOrderMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service OrderService.
   * <pre>
   * Places orders and answers questions about them. The public face of the shop.
   * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
   * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
   * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
   * </pre>
   */
  public static final class OrderServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<OrderServiceBlockingV2Stub> {
    private OrderServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected OrderServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new OrderServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Places an order. Retrying with the same idempotency_key returns the same order.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.PlaceOrderResponse placeOrder(shop.order.v1.OrderOuterClass.PlaceOrderRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getPlaceOrderMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one order.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.GetOrderResponse getOrder(shop.order.v1.OrderOuterClass.GetOrderRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetOrderMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists orders, newest first, optionally filtered by customer and status.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.ListOrdersResponse listOrders(shop.order.v1.OrderOuterClass.ListOrdersRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListOrdersMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams the order's state: the current state first, then every change until it is final.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, shop.order.v1.OrderOuterClass.WatchOrderResponse>
        watchOrder(shop.order.v1.OrderOuterClass.WatchOrderRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getWatchOrderMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Cancels an order that is not final yet, releasing stock and refunding payment.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.CancelOrderResponse cancelOrder(shop.order.v1.OrderOuterClass.CancelOrderRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCancelOrderMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service OrderService.
   * <pre>
   * Places orders and answers questions about them. The public face of the shop.
   * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
   * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
   * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
   * </pre>
   */
  public static final class OrderServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<OrderServiceBlockingStub> {
    private OrderServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected OrderServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new OrderServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Places an order. Retrying with the same idempotency_key returns the same order.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.PlaceOrderResponse placeOrder(shop.order.v1.OrderOuterClass.PlaceOrderRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPlaceOrderMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one order.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.GetOrderResponse getOrder(shop.order.v1.OrderOuterClass.GetOrderRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetOrderMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists orders, newest first, optionally filtered by customer and status.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.ListOrdersResponse listOrders(shop.order.v1.OrderOuterClass.ListOrdersRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListOrdersMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams the order's state: the current state first, then every change until it is final.
     * </pre>
     */
    public java.util.Iterator<shop.order.v1.OrderOuterClass.WatchOrderResponse> watchOrder(
        shop.order.v1.OrderOuterClass.WatchOrderRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getWatchOrderMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Cancels an order that is not final yet, releasing stock and refunding payment.
     * </pre>
     */
    public shop.order.v1.OrderOuterClass.CancelOrderResponse cancelOrder(shop.order.v1.OrderOuterClass.CancelOrderRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCancelOrderMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service OrderService.
   * <pre>
   * Places orders and answers questions about them. The public face of the shop.
   * Methods marked NO_SIDE_EFFECTS or IDEMPOTENT (here and in every service) are retried on
   * UNAVAILABLE by the mesh's clients, through a gRPC service config derived from these options.
   * The google.api.http options are the REST routes the API gateway (services/gateway) serves.
   * </pre>
   */
  public static final class OrderServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<OrderServiceFutureStub> {
    private OrderServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected OrderServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new OrderServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Places an order. Retrying with the same idempotency_key returns the same order.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.order.v1.OrderOuterClass.PlaceOrderResponse> placeOrder(
        shop.order.v1.OrderOuterClass.PlaceOrderRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPlaceOrderMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Reads one order.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.order.v1.OrderOuterClass.GetOrderResponse> getOrder(
        shop.order.v1.OrderOuterClass.GetOrderRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetOrderMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists orders, newest first, optionally filtered by customer and status.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.order.v1.OrderOuterClass.ListOrdersResponse> listOrders(
        shop.order.v1.OrderOuterClass.ListOrdersRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListOrdersMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Cancels an order that is not final yet, releasing stock and refunding payment.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.order.v1.OrderOuterClass.CancelOrderResponse> cancelOrder(
        shop.order.v1.OrderOuterClass.CancelOrderRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCancelOrderMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_PLACE_ORDER = 0;
  private static final int METHODID_GET_ORDER = 1;
  private static final int METHODID_LIST_ORDERS = 2;
  private static final int METHODID_WATCH_ORDER = 3;
  private static final int METHODID_CANCEL_ORDER = 4;

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
        case METHODID_PLACE_ORDER:
          serviceImpl.placeOrder((shop.order.v1.OrderOuterClass.PlaceOrderRequest) request,
              (io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.PlaceOrderResponse>) responseObserver);
          break;
        case METHODID_GET_ORDER:
          serviceImpl.getOrder((shop.order.v1.OrderOuterClass.GetOrderRequest) request,
              (io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.GetOrderResponse>) responseObserver);
          break;
        case METHODID_LIST_ORDERS:
          serviceImpl.listOrders((shop.order.v1.OrderOuterClass.ListOrdersRequest) request,
              (io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.ListOrdersResponse>) responseObserver);
          break;
        case METHODID_WATCH_ORDER:
          serviceImpl.watchOrder((shop.order.v1.OrderOuterClass.WatchOrderRequest) request,
              (io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.WatchOrderResponse>) responseObserver);
          break;
        case METHODID_CANCEL_ORDER:
          serviceImpl.cancelOrder((shop.order.v1.OrderOuterClass.CancelOrderRequest) request,
              (io.grpc.stub.StreamObserver<shop.order.v1.OrderOuterClass.CancelOrderResponse>) responseObserver);
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
          getPlaceOrderMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.order.v1.OrderOuterClass.PlaceOrderRequest,
              shop.order.v1.OrderOuterClass.PlaceOrderResponse>(
                service, METHODID_PLACE_ORDER)))
        .addMethod(
          getGetOrderMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.order.v1.OrderOuterClass.GetOrderRequest,
              shop.order.v1.OrderOuterClass.GetOrderResponse>(
                service, METHODID_GET_ORDER)))
        .addMethod(
          getListOrdersMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.order.v1.OrderOuterClass.ListOrdersRequest,
              shop.order.v1.OrderOuterClass.ListOrdersResponse>(
                service, METHODID_LIST_ORDERS)))
        .addMethod(
          getWatchOrderMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              shop.order.v1.OrderOuterClass.WatchOrderRequest,
              shop.order.v1.OrderOuterClass.WatchOrderResponse>(
                service, METHODID_WATCH_ORDER)))
        .addMethod(
          getCancelOrderMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.order.v1.OrderOuterClass.CancelOrderRequest,
              shop.order.v1.OrderOuterClass.CancelOrderResponse>(
                service, METHODID_CANCEL_ORDER)))
        .build();
  }

  private static abstract class OrderServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    OrderServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return shop.order.v1.OrderOuterClass.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("OrderService");
    }
  }

  private static final class OrderServiceFileDescriptorSupplier
      extends OrderServiceBaseDescriptorSupplier {
    OrderServiceFileDescriptorSupplier() {}
  }

  private static final class OrderServiceMethodDescriptorSupplier
      extends OrderServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    OrderServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (OrderServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new OrderServiceFileDescriptorSupplier())
              .addMethod(getPlaceOrderMethod())
              .addMethod(getGetOrderMethod())
              .addMethod(getListOrdersMethod())
              .addMethod(getWatchOrderMethod())
              .addMethod(getCancelOrderMethod())
              .build();
        }
      }
    }
    return result;
  }
}
