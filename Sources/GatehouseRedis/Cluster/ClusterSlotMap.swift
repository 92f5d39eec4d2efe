/// Which master serves which slot, as one node of the cluster described it (`CLUSTER SLOTS`).
///
/// A value with no I/O: ``RedisClusterRouter`` asks a node, parses the reply here, and replaces
/// its map as a whole (or one slot, on a `MOVED` redirect).
package struct ClusterSlotMap: Sendable, Equatable {
    /// The masters, in the order the reply named them.
    package private(set) var masters: [RedisURL.Address]
    /// Every replica named, for finding the cluster again when the masters are gone.
    package private(set) var replicas: [RedisURL.Address]
    /// For each slot, the index of its master in `masters`; `unassigned` when no master serves it.
    private var owners: [UInt16]
    private static let unassigned = UInt16.max

    /// An empty map (every slot unassigned).
    package init() {
        self.masters = []
        self.replicas = []
        self.owners = Array(repeating: Self.unassigned, count: ClusterSlot.count)
    }

    /// The master of `slot`, or `nil` when no master serves it.
    package func master(ofSlot slot: Int) -> RedisURL.Address? {
        let owner = self.owners[slot]
        return owner == Self.unassigned ? nil : self.masters[Int(owner)]
    }

    /// The number of slots some master serves (16384 on a healthy cluster).
    package var assignedSlotCount: Int { self.owners.reduce(0) { $0 + ($1 == Self.unassigned ? 0 : 1) } }

    /// Records a `MOVED` redirect: `slot` is now served by `address`.
    package mutating func assign(slot: Int, to address: RedisURL.Address) {
        guard (0..<ClusterSlot.count).contains(slot) else { return }
        if let index = self.masters.firstIndex(of: address) {
            self.owners[slot] = UInt16(index)
        } else {
            self.masters.append(address)
            self.owners[slot] = UInt16(self.masters.count - 1)
        }
    }

    /// Parses a `CLUSTER SLOTS` reply: an array of `[start, end, [host, port, id, …], replicas…]`.
    /// An empty host (a node that does not know its own address) means the node that was asked.
    package init(clusterSlotsReply reply: RedisValue, askedNode: RedisURL.Address) throws(RedisError) {
        self.init()
        guard case .array(let ranges) = reply else {
            throw RedisError(.unexpectedReply, "CLUSTER SLOTS did not return an array: \(reply)")
        }
        for range in ranges {
            guard case .array(let items) = range, items.count >= 3,
                let start = items[0].integer, let end = items[1].integer,
                start >= 0, start <= end, end < ClusterSlot.count
            else { throw RedisError(.unexpectedReply, "a malformed CLUSTER SLOTS range: \(range)") }
            let master = try Self.address(items[2], askedNode: askedNode)
            var index = self.masters.firstIndex(of: master)
            if index == nil {
                self.masters.append(master)
                index = self.masters.count - 1
            }
            for slot in Int(start)...Int(end) { self.owners[slot] = UInt16(index!) }
            for replica in items.dropFirst(3) {
                let address = try Self.address(replica, askedNode: askedNode)
                if !self.replicas.contains(address) { self.replicas.append(address) }
            }
        }
    }

    private static func address(_ node: RedisValue, askedNode: RedisURL.Address) throws(RedisError) -> RedisURL.Address {
        guard case .array(let fields) = node, fields.count >= 2, let host = fields[0].string,
            let port = fields[1].integer, (1...65535).contains(port)
        else { throw RedisError(.unexpectedReply, "a malformed node in CLUSTER SLOTS: \(node)") }
        // "?" is what a node says of itself when its address is not known yet.
        return RedisURL.Address(host: host.isEmpty || host == "?" ? askedNode.host : host, port: Int(port))
    }
}

/// A reply that sends a command elsewhere: `MOVED <slot> <host>:<port>` (the slot has a new
/// master; update the map) or `ASK <slot> <host>:<port>` (this one key is being migrated; send
/// `ASKING` and the command to that node once, without changing the map).
package struct ClusterRedirect: Sendable, Equatable {
    package enum Kind: Sendable, Equatable { case moved, ask }
    package var kind: Kind
    package var slot: Int
    package var address: RedisURL.Address

    /// The redirect an error reply holds, if it is one.
    package init?(_ reply: RedisValue) {
        guard case .error(let message) = reply else { return nil }
        self.init(message: message)
    }

    package init?(message: String) {
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), (0..<ClusterSlot.count).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        switch parts[0] {
        case "MOVED": self.kind = .moved
        case "ASK": self.kind = .ask
        default: return nil
        }
        var host = parts[2][..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        self.slot = slot
        self.address = RedisURL.Address(host: String(host), port: port)
    }
}
