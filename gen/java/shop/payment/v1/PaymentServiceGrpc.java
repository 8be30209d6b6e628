package shop.payment.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Charges and refunds orders. Capture and refund are idempotent per order.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class PaymentServiceGrpc {

  private PaymentServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "shop.payment.v1.PaymentService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.CapturePaymentRequest,
      shop.payment.v1.PaymentOuterClass.CapturePaymentResponse> getCapturePaymentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CapturePayment",
      requestType = shop.payment.v1.PaymentOuterClass.CapturePaymentRequest.class,
      responseType = shop.payment.v1.PaymentOuterClass.CapturePaymentResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.CapturePaymentRequest,
      shop.payment.v1.PaymentOuterClass.CapturePaymentResponse> getCapturePaymentMethod() {
    io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.CapturePaymentRequest, shop.payment.v1.PaymentOuterClass.CapturePaymentResponse> getCapturePaymentMethod;
    if ((getCapturePaymentMethod = PaymentServiceGrpc.getCapturePaymentMethod) == null) {
      synchronized (PaymentServiceGrpc.class) {
        if ((getCapturePaymentMethod = PaymentServiceGrpc.getCapturePaymentMethod) == null) {
          PaymentServiceGrpc.getCapturePaymentMethod = getCapturePaymentMethod =
              io.grpc.MethodDescriptor.<shop.payment.v1.PaymentOuterClass.CapturePaymentRequest, shop.payment.v1.PaymentOuterClass.CapturePaymentResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CapturePayment"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.payment.v1.PaymentOuterClass.CapturePaymentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.payment.v1.PaymentOuterClass.CapturePaymentResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PaymentServiceMethodDescriptorSupplier("CapturePayment"))
              .build();
        }
      }
    }
    return getCapturePaymentMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.RefundPaymentRequest,
      shop.payment.v1.PaymentOuterClass.RefundPaymentResponse> getRefundPaymentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "RefundPayment",
      requestType = shop.payment.v1.PaymentOuterClass.RefundPaymentRequest.class,
      responseType = shop.payment.v1.PaymentOuterClass.RefundPaymentResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.RefundPaymentRequest,
      shop.payment.v1.PaymentOuterClass.RefundPaymentResponse> getRefundPaymentMethod() {
    io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.RefundPaymentRequest, shop.payment.v1.PaymentOuterClass.RefundPaymentResponse> getRefundPaymentMethod;
    if ((getRefundPaymentMethod = PaymentServiceGrpc.getRefundPaymentMethod) == null) {
      synchronized (PaymentServiceGrpc.class) {
        if ((getRefundPaymentMethod = PaymentServiceGrpc.getRefundPaymentMethod) == null) {
          PaymentServiceGrpc.getRefundPaymentMethod = getRefundPaymentMethod =
              io.grpc.MethodDescriptor.<shop.payment.v1.PaymentOuterClass.RefundPaymentRequest, shop.payment.v1.PaymentOuterClass.RefundPaymentResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "RefundPayment"))
              .setIdempotent(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.payment.v1.PaymentOuterClass.RefundPaymentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.payment.v1.PaymentOuterClass.RefundPaymentResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PaymentServiceMethodDescriptorSupplier("RefundPayment"))
              .build();
        }
      }
    }
    return getRefundPaymentMethod;
  }

  private static volatile io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.GetPaymentRequest,
      shop.payment.v1.PaymentOuterClass.GetPaymentResponse> getGetPaymentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetPayment",
      requestType = shop.payment.v1.PaymentOuterClass.GetPaymentRequest.class,
      responseType = shop.payment.v1.PaymentOuterClass.GetPaymentResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.GetPaymentRequest,
      shop.payment.v1.PaymentOuterClass.GetPaymentResponse> getGetPaymentMethod() {
    io.grpc.MethodDescriptor<shop.payment.v1.PaymentOuterClass.GetPaymentRequest, shop.payment.v1.PaymentOuterClass.GetPaymentResponse> getGetPaymentMethod;
    if ((getGetPaymentMethod = PaymentServiceGrpc.getGetPaymentMethod) == null) {
      synchronized (PaymentServiceGrpc.class) {
        if ((getGetPaymentMethod = PaymentServiceGrpc.getGetPaymentMethod) == null) {
          PaymentServiceGrpc.getGetPaymentMethod = getGetPaymentMethod =
              io.grpc.MethodDescriptor.<shop.payment.v1.PaymentOuterClass.GetPaymentRequest, shop.payment.v1.PaymentOuterClass.GetPaymentResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetPayment"))
              .setSafe(true)
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.payment.v1.PaymentOuterClass.GetPaymentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  shop.payment.v1.PaymentOuterClass.GetPaymentResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PaymentServiceMethodDescriptorSupplier("GetPayment"))
              .build();
        }
      }
    }
    return getGetPaymentMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static PaymentServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PaymentServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PaymentServiceStub>() {
        @java.lang.Override
        public PaymentServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PaymentServiceStub(channel, callOptions);
        }
      };
    return PaymentServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static PaymentServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PaymentServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PaymentServiceBlockingV2Stub>() {
        @java.lang.Override
        public PaymentServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PaymentServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return PaymentServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static PaymentServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PaymentServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PaymentServiceBlockingStub>() {
        @java.lang.Override
        public PaymentServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PaymentServiceBlockingStub(channel, callOptions);
        }
      };
    return PaymentServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static PaymentServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PaymentServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PaymentServiceFutureStub>() {
        @java.lang.Override
        public PaymentServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PaymentServiceFutureStub(channel, callOptions);
        }
      };
    return PaymentServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Charges and refunds orders. Capture and refund are idempotent per order.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Captures the order's amount from a card. A declined card is an answer
     * (status DECLINED), not an error.
     * </pre>
     */
    default void capturePayment(shop.payment.v1.PaymentOuterClass.CapturePaymentRequest request,
        io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.CapturePaymentResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCapturePaymentMethod(), responseObserver);
    }

    /**
     * <pre>
     * Refunds a captured payment (compensation). No-op if already refunded.
     * </pre>
     */
    default void refundPayment(shop.payment.v1.PaymentOuterClass.RefundPaymentRequest request,
        io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.RefundPaymentResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRefundPaymentMethod(), responseObserver);
    }

    /**
     * <pre>
     * Reads one payment.
     * </pre>
     */
    default void getPayment(shop.payment.v1.PaymentOuterClass.GetPaymentRequest request,
        io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.GetPaymentResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetPaymentMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service PaymentService.
   * <pre>
   * Charges and refunds orders. Capture and refund are idempotent per order.
   * </pre>
   */
  public static abstract class PaymentServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return PaymentServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service PaymentService.
   * <pre>
   * Charges and refunds orders. Capture and refund are idempotent per order.
   * </pre>
   */
  public static final class PaymentServiceStub
      extends io.grpc.stub.AbstractAsyncStub<PaymentServiceStub> {
    private PaymentServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PaymentServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PaymentServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Captures the order's amount from a card. A declined card is an answer
     * (status DECLINED), not an error.
     * </pre>
     */
    public void capturePayment(shop.payment.v1.PaymentOuterClass.CapturePaymentRequest request,
        io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.CapturePaymentResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCapturePaymentMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Refunds a captured payment (compensation). No-op if already refunded.
     * </pre>
     */
    public void refundPayment(shop.payment.v1.PaymentOuterClass.RefundPaymentRequest request,
        io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.RefundPaymentResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRefundPaymentMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Reads one payment.
     * </pre>
     */
    public void getPayment(shop.payment.v1.PaymentOuterClass.GetPaymentRequest request,
        io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.GetPaymentResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetPaymentMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service PaymentService.
   * <pre>
   * Charges and refunds orders. Capture and refund are idempotent per order.
   * </pre>
   */
  public static final class PaymentServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<PaymentServiceBlockingV2Stub> {
    private PaymentServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PaymentServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PaymentServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Captures the order's amount from a card. A declined card is an answer
     * (status DECLINED), not an error.
     * </pre>
     */
    public shop.payment.v1.PaymentOuterClass.CapturePaymentResponse capturePayment(shop.payment.v1.PaymentOuterClass.CapturePaymentRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCapturePaymentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Refunds a captured payment (compensation). No-op if already refunded.
     * </pre>
     */
    public shop.payment.v1.PaymentOuterClass.RefundPaymentResponse refundPayment(shop.payment.v1.PaymentOuterClass.RefundPaymentRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getRefundPaymentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one payment.
     * </pre>
     */
    public shop.payment.v1.PaymentOuterClass.GetPaymentResponse getPayment(shop.payment.v1.PaymentOuterClass.GetPaymentRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetPaymentMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service PaymentService.
   * <pre>
   * Charges and refunds orders. Capture and refund are idempotent per order.
   * </pre>
   */
  public static final class PaymentServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<PaymentServiceBlockingStub> {
    private PaymentServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PaymentServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PaymentServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Captures the order's amount from a card. A declined card is an answer
     * (status DECLINED), not an error.
     * </pre>
     */
    public shop.payment.v1.PaymentOuterClass.CapturePaymentResponse capturePayment(shop.payment.v1.PaymentOuterClass.CapturePaymentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCapturePaymentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Refunds a captured payment (compensation). No-op if already refunded.
     * </pre>
     */
    public shop.payment.v1.PaymentOuterClass.RefundPaymentResponse refundPayment(shop.payment.v1.PaymentOuterClass.RefundPaymentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRefundPaymentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one payment.
     * </pre>
     */
    public shop.payment.v1.PaymentOuterClass.GetPaymentResponse getPayment(shop.payment.v1.PaymentOuterClass.GetPaymentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetPaymentMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service PaymentService.
   * <pre>
   * Charges and refunds orders. Capture and refund are idempotent per order.
   * </pre>
   */
  public static final class PaymentServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<PaymentServiceFutureStub> {
    private PaymentServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PaymentServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PaymentServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Captures the order's amount from a card. A declined card is an answer
     * (status DECLINED), not an error.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.payment.v1.PaymentOuterClass.CapturePaymentResponse> capturePayment(
        shop.payment.v1.PaymentOuterClass.CapturePaymentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCapturePaymentMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Refunds a captured payment (compensation). No-op if already refunded.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.payment.v1.PaymentOuterClass.RefundPaymentResponse> refundPayment(
        shop.payment.v1.PaymentOuterClass.RefundPaymentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRefundPaymentMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Reads one payment.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<shop.payment.v1.PaymentOuterClass.GetPaymentResponse> getPayment(
        shop.payment.v1.PaymentOuterClass.GetPaymentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetPaymentMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_CAPTURE_PAYMENT = 0;
  private static final int METHODID_REFUND_PAYMENT = 1;
  private static final int METHODID_GET_PAYMENT = 2;

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
        case METHODID_CAPTURE_PAYMENT:
          serviceImpl.capturePayment((shop.payment.v1.PaymentOuterClass.CapturePaymentRequest) request,
              (io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.CapturePaymentResponse>) responseObserver);
          break;
        case METHODID_REFUND_PAYMENT:
          serviceImpl.refundPayment((shop.payment.v1.PaymentOuterClass.RefundPaymentRequest) request,
              (io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.RefundPaymentResponse>) responseObserver);
          break;
        case METHODID_GET_PAYMENT:
          serviceImpl.getPayment((shop.payment.v1.PaymentOuterClass.GetPaymentRequest) request,
              (io.grpc.stub.StreamObserver<shop.payment.v1.PaymentOuterClass.GetPaymentResponse>) responseObserver);
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
          getCapturePaymentMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.payment.v1.PaymentOuterClass.CapturePaymentRequest,
              shop.payment.v1.PaymentOuterClass.CapturePaymentResponse>(
                service, METHODID_CAPTURE_PAYMENT)))
        .addMethod(
          getRefundPaymentMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.payment.v1.PaymentOuterClass.RefundPaymentRequest,
              shop.payment.v1.PaymentOuterClass.RefundPaymentResponse>(
                service, METHODID_REFUND_PAYMENT)))
        .addMethod(
          getGetPaymentMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              shop.payment.v1.PaymentOuterClass.GetPaymentRequest,
              shop.payment.v1.PaymentOuterClass.GetPaymentResponse>(
                service, METHODID_GET_PAYMENT)))
        .build();
  }

  private static abstract class PaymentServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    PaymentServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return shop.payment.v1.PaymentOuterClass.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("PaymentService");
    }
  }

  private static final class PaymentServiceFileDescriptorSupplier
      extends PaymentServiceBaseDescriptorSupplier {
    PaymentServiceFileDescriptorSupplier() {}
  }

  private static final class PaymentServiceMethodDescriptorSupplier
      extends PaymentServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    PaymentServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (PaymentServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new PaymentServiceFileDescriptorSupplier())
              .addMethod(getCapturePaymentMethod())
              .addMethod(getRefundPaymentMethod())
              .addMethod(getGetPaymentMethod())
              .build();
        }
      }
    }
    return result;
  }
}
