public import GatehouseCore
import Synchronization

/// This node's view of what has been revoked, kept from the revocation feed so that verifying a
/// session needs no Redis round trip.
///
/// Holds revoked session ids (until their tokens expire anyway), each user's security epoch
/// (tokens with a lower `ep` are dead), and every domain's policy (password-only sessions die
/// when their domain becomes `enforced`). Entries come from `RevocationFeed` — including this
/// node's own, which it also applies at once.
public final class RevocationView: Sendable {
    struct State {
        var revokedSessions: [String: Int64] = [:]
        var epochs: [String: UInt64] = [:]
        var policies: [String: DomainPolicy] = [:]
        var lastPurge: Int64 = 0
    }

    private let state = Mutex(State())

    /// Creates an empty view.
    public init() {}

    /// Why a session is refused by the view, if it is.
    public enum Verdict: Sendable, Equatable {
        case valid, revoked, epochRaised, policyRequiresSecondStep
    }

    /// Checks a verified session's claims against what has been revoked.
    public func check(_ claims: SessionClaims, domain: Substring) -> Verdict {
        state.withLock { s in
            if s.revokedSessions[claims.sessionID] != nil { return .revoked }
            if let epoch = s.epochs[claims.common.user], claims.common.epoch < epoch { return .epochRaised }
            if !claims.methods.hasSecondStep, let policy = s.policies[String(domain)], policy.mode == .enforced {
                return .policyRequiresSecondStep
            }
            return .valid
        }
    }

    /// The policy in force for `domain` (the default when never set).
    public func policy(for domain: String) -> DomainPolicy {
        state.withLock { $0.policies[domain] } ?? .default
    }

    /// The highest epoch seen for `user`, if any.
    public func epoch(of user: String) -> UInt64? {
        state.withLock { $0.epochs[user] }
    }

    func revokeSession(_ sid: String, expiresAt: Int64, now: Int64) {
        state.withLock { s in
            s.revokedSessions[sid] = expiresAt
            // Purge expired entries now and then: a revoked token that has expired fails anyway.
            if now - s.lastPurge > 60 {
                s.lastPurge = now
                s.revokedSessions = s.revokedSessions.filter { $0.value + 60 > now }
            }
        }
    }

    func raiseEpoch(of user: String, to epoch: UInt64) {
        state.withLock { s in
            if (s.epochs[user] ?? 0) < epoch { s.epochs[user] = epoch }
        }
    }

    func setPolicy(_ policy: DomainPolicy?, for domain: String) {
        state.withLock { $0.policies[domain] = policy }
    }

    func replacePolicies(_ policies: [String: DomainPolicy]) {
        state.withLock { $0.policies = policies }
    }
}
