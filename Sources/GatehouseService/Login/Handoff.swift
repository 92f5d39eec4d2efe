import Foundation
public import GatehouseCore
import GatehouseCrypto
import GatehouseRedis

/// A sign-in handed from the provider's webmail to Gatehouse's second-step page: the webmail has
/// checked the primary password, asks for a ticket (`POST /v1/login/handoff`, server to server,
/// with its API key) and sends the browser to `/account/continue?ticket=…`. The page redeems the
/// ticket once and runs the login from there; the browser never sees an API key or a challenge
/// token in a URL.
public struct Handoff: Sendable, Equatable {
    public var user: UserID
    /// Where the browser goes once signed in (checked against the allow-list when the ticket is
    /// made and again when it is used).
    public var returnTo: String
    public var clientIP: String?
    public var userAgent: String?

    public init(user: UserID, returnTo: String, clientIP: String?, userAgent: String?) {
        self.user = user
        self.returnTo = returnTo
        self.clientIP = clientIP
        self.userAgent = userAgent
    }
}

extension Gatehouse {
    /// How long a hand-off ticket can be redeemed: the browser follows a redirect at once.
    static let handoffSeconds: Int64 = 120

    /// Whether `address` may be a hand-off's return address (docs/web-pages.md).
    public func allowsReturn(to address: String) -> Bool {
        configuration.web.allowsReturn(to: address, demo: configuration.web.demo ?? false)
    }

    /// `POST /v1/login/handoff`: a single-use ticket (256 random bits, stored only as its SHA-256
    /// for 2 minutes) that the browser redeems on the second-step page.
    public func createHandoff(_ handoff: Handoff) async throws(ServiceError) -> (ticket: String, expiresAt: Int64) {
        guard allowsReturn(to: handoff.returnTo) else {
            throw ServiceError(.invalidRequest, "return_to is not an allowed return address (GATEHOUSE_WEB_RETURN_URLS)")
        }
        let ticket = try newID(byteCount: 32)
        var record: [String: String] = ["user": handoff.user.value, "return_to": handoff.returnTo]
        if let ip = handoff.clientIP { record["client_ip"] = ip }
        if let agent = handoff.userAgent { record["user_agent"] = agent }
        let json: String
        do { json = String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self) } catch {
            throw ServiceError(.unavailable, "cannot encode the hand-off", underlying: error)
        }
        do {
            _ = try await redis.send(["SET", handoffKey(ticket), json, "EX", Int(Self.handoffSeconds)])
        } catch { throw ServiceError.unavailable(error) }
        return (ticket, now + Self.handoffSeconds)
    }

    /// Redeems a ticket (once: GETDEL). An unknown, used or expired ticket is `challenge_expired`.
    public func redeemHandoff(ticket: String) async throws(ServiceError) -> Handoff {
        let expired = ServiceError(.challengeExpired, "this sign-in link has expired or was already used; sign in to your webmail again")
        guard (40...64).contains(ticket.utf8.count), Base64URL.decode(ticket) != nil else { throw expired }
        let reply: RedisValue
        do { reply = try await redis.send(["GETDEL", handoffKey(ticket)]) } catch { throw ServiceError.unavailable(error) }
        guard let text = reply.string,
              let o = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: String],
              let user = o["user"].flatMap({ UserID($0) }), let returnTo = o["return_to"], allowsReturn(to: returnTo)
        else { throw expired }
        return Handoff(user: user, returnTo: returnTo, clientIP: o["client_ip"], userAgent: o["user_agent"])
    }

    /// `<prefix>:handoff:<hex SHA-256 of the ticket>`: the ticket itself is never stored.
    private func handoffKey(_ ticket: String) -> String {
        let digest = Digest.hash(.sha256, Array(ticket.utf8))
        return keys.prefix + ":handoff:" + digest.map { String(format: "%02x", $0) }.joined()
    }
}
