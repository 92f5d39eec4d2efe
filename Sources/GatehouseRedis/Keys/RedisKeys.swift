/// The one place Redis keys are built.
///
/// Every key of a user carries the hash tag `{<user>}`, so all of one user's keys
/// hash to one Redis Cluster slot and one Lua script may touch them all; moving to Cluster is then
/// a routing change, not a rewrite of the keys.
///
/// ```swift
/// let keys = RedisKeys(prefix: "gh")
/// try keys.user("Alice@Example.org", "totp")   // "gh:{alice@example.org}:totp"
/// keys.global("policy", "example.org")         // "gh:policy:example.org"
/// ```
public struct RedisKeys: Sendable, Hashable {
    /// The prefix of every key (a namespace, so Gatehouse can share a Redis with others).
    public let prefix: String

    /// Creates the key builder.
    ///
    /// - Precondition: `prefix` contains no `{` or `}`: Redis takes the first `{…}` of a key as
    ///   its hash tag, so a brace in the prefix would displace the user's tag.
    public init(prefix: String) {
        precondition(!prefix.contains("{") && !prefix.contains("}"), "a Redis key prefix must not contain braces")
        self.prefix = prefix
    }

    /// The hash tag of `user`: `{<lower-cased user>}`.
    ///
    /// - Throws: ``RedisError/Code/invalidArgument`` if `user` is empty or contains `{` or `}`.
    ///   Redis ends a hash tag at the first `}`, so such a user would share a slot with other
    ///   users and could collide with their keys; users are email addresses, which never
    ///   legitimately contain braces in Gatehouse, so rejecting is safer than escaping.
    public func userTag(_ user: String) throws(RedisError) -> String {
        guard !user.isEmpty else {
            throw RedisError(.invalidArgument, "an empty user cannot name a Redis key")
        }
        guard !user.contains("{") && !user.contains("}") else {
            throw RedisError(.invalidArgument, "a user containing '{' or '}' cannot be a Redis hash tag")
        }
        return "{" + user.lowercased() + "}"
    }

    /// A key of `user`: `<prefix>:{<user>}:<part>:<part>…`.
    ///
    /// - Throws: ``RedisError/Code/invalidArgument`` for a user ``userTag(_:)`` rejects.
    public func user(_ user: String, _ parts: String...) throws(RedisError) -> String {
        var key = self.prefix + ":" + (try self.userTag(user))
        for part in parts {
            key += ":"
            key += part
        }
        return key
    }

    /// A key that belongs to no user: `<prefix>:<part>:<part>…` (domain policies, the
    /// revocation stream).
    public func global(_ parts: String...) -> String {
        ([self.prefix] + parts).joined(separator: ":")
    }
}
