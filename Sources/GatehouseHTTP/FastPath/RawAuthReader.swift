import NIOCore

/// The first inbound handler of a connection, ahead of the HTTP/1 decoder: while a connection
/// sends nothing but plain `GET /v1/auth` requests (``RawAuthHead``) — the check nginx's
/// `auth_request` and a webmail front end make on every request — they are read from the bytes
/// and answered by ``FastPathHandler/answerRawAuth(_:)``, without the decoder.
///
/// A read is taken head by head while ``FastPathHandler/mayAnswerRawAuth`` allows it. At the first
/// bytes that are not such a head (another request, a head cut at the end of the read, anything
/// unusual in one), those bytes and everything after them go to the decoder and this handler
/// leaves the pipeline: the decoder then reads the connection from a request's first byte, as if
/// this handler had never been there, and every request after it takes the decoder's path.
final class RawAuthReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let fastPath: FastPathHandler

    init(fastPath: FastPathHandler) {
        self.fastPath = fastPath
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        while buffer.readableBytes > 0, fastPath.mayAnswerRawAuth,
              let head = buffer.withUnsafeReadableBytes({ RawAuthHead.parse($0) }) {
            buffer.moveReaderIndex(forwardBy: head.length)
            fastPath.answerRawAuth(head.credentials)
        }
        guard buffer.readableBytes > 0 else { return }
        context.fireChannelRead(wrapInboundOut(buffer))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
