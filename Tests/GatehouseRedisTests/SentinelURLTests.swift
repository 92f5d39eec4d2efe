import Testing

import GatehouseRedis

/// `redis-sentinel://` parsing, redaction and the reply parsing of the resolver; no server.
@Suite("Sentinel URL units")
struct SentinelURLTests {
    typealias Address = RedisURL.Sentinel.Address

    static func sentinel(
        _ addresses: [Address],
        _ name: String,
        user: String? = nil,
        password: String? = nil,
        dataUser: String? = nil,
        dataPassword: String? = nil,
        database: Int = 0
    ) -> RedisURL {
        RedisURL(
            endpoint: .sentinel(.init(addresses: addresses, masterName: name, user: user, password: password)),
            user: dataUser,
            password: dataPassword,
            database: database
        )
    }

    @Test(arguments: [
        ("redis-sentinel://127.0.0.1:26379/mymaster", sentinel([Address(host: "127.0.0.1", port: 26379)], "mymaster")),
        (
            "redis-sentinel://h1:1,h2:2,h3/main/3",
            sentinel([Address(host: "h1", port: 1), Address(host: "h2", port: 2), Address(host: "h3", port: 26379)], "main", database: 3)
        ),
        ("redis-sentinel://:pw@h:5/m", sentinel([Address(host: "h", port: 5)], "m", dataPassword: "pw")),
        ("redis-sentinel://alice:p%40ss@h/m/1", sentinel([Address(host: "h", port: 26379)], "m", dataUser: "alice", dataPassword: "p@ss", database: 1)),
        ("redis-sentinel://[::1]:7000,[::1]/m", sentinel([Address(host: "::1", port: 7000), Address(host: "::1", port: 26379)], "m")),
        ("redis-sentinel://h:1/my%2Dgroup", sentinel([Address(host: "h", port: 1)], "my-group")),
        ("redis-sentinel://h:1/m?sentinel_password=s%26cret", sentinel([Address(host: "h", port: 1)], "m", password: "s&cret")),
        (
            "redis-sentinel://:data@h:1/m/2?sentinel_user=watch&sentinel_password=s",
            sentinel([Address(host: "h", port: 1)], "m", user: "watch", password: "s", dataPassword: "data", database: 2)
        ),
    ])
    func validURLs(_ text: String, _ expected: RedisURL) throws {
        #expect(try RedisURL(text) == expected)
    }

    @Test(arguments: [
        "redis-sentinel://h:1",  // no master name
        "redis-sentinel://h:1/",  // empty master name
        "redis-sentinel://h:1/m/x",  // database not a number
        "redis-sentinel://h:1/m/1/extra",  // too many path segments
        "redis-sentinel://h:1/m/-1",  // negative database
        "redis-sentinel://h:0/m",  // bad port
        "redis-sentinel://h:99999/m",
        "redis-sentinel://h:1,,h:2/m",  // empty address
        "redis-sentinel://:1/m",  // no host
        "redis-sentinel:///m",  // no sentinels
        "redis-sentinel://h:1/m?password=x",  // data password belongs in the userinfo
        "redis-sentinel://h:1/m?db=2",
        "redis-sentinel://h:1/m?sentinel_user=u",  // sentinel user without password
        "redis-sentinel://alice@h:1/m",  // the `secret@` shorthand is a password, fine — but a user needs one:
        "redis-sentinel://h:1/a%0A",  // control character in the name
        "redis-sentinel://h:1/my%20group",  // a space (a sentinel.conf line could not name it)
        "redis-sentinel://h:1/m?sentinel_password=%zz",
        "redis-sentinel://[::1/m",
    ])
    func invalidURLs(_ text: String) {
        do {
            let url = try RedisURL(text)
            // `alice@` is the password-only shorthand: that one is valid; nothing else is.
            #expect(text == "redis-sentinel://alice@h:1/m", "parsed: \(url)")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(!error.message.isEmpty)
        }
    }

    @Test func descriptionAndErrorsHideBothPasswords() throws {
        let url = try RedisURL("redis-sentinel://alice:datasecret@h1:1,h2:2/m/4?sentinel_user=w&sentinel_password=sentsecret")
        #expect(url.description == "redis-sentinel://alice:***@h1:1,h2:2/m/4?sentinel_user=w&sentinel_password=***")
        guard case .sentinel(let sentinel) = url.endpoint else {
            Issue.record("not a sentinel endpoint: \(url)")
            return
        }
        #expect(!"\(sentinel)".contains("sentsecret"))
        #expect(!"\(url.endpoint)".contains("sentsecret"))
        for bad in [
            "redis-sentinel://alice:datasecret@h:1/m/x?sentinel_password=sentsecret",
            "redis-sentinel://h:1/m?password=datasecret&sentinel_password=sentsecret",
            "redis-sentinel://h:1/m?sentinel_password=sentsecret&password=datasecret&junk=1",
        ] {
            do {
                _ = try RedisURL(bad)
                Issue.record("parsed: \(bad)")
            } catch {
                #expect(!error.message.contains("datasecret") && !error.message.contains("sentsecret"), "\(error.message)")
            }
        }
    }

    @Test func errorMessagesSayWhatIsWrong() {
        do {
            _ = try RedisURL("redis-sentinel://h:1")
            Issue.record("parsed without a master name")
        } catch {
            #expect(error.message.contains("MASTERNAME"))
        }
        do {
            _ = try RedisURL("sentinel://h:1/m")
            Issue.record("parsed an unknown scheme")
        } catch {
            #expect(error.message.contains("redis-sentinel://"))
        }
    }

    @Test func parsesTheSentinelAnswer() throws {
        let reply = RedisValue.array([.bulkString(Array("10.0.0.5".utf8)), .bulkString(Array("6380".utf8))])
        #expect(try SentinelResolver.address(from: reply, masterName: "m") == Address(host: "10.0.0.5", port: 6380))
        for bad: RedisValue in [.null, .array([]), .array([.bulkString(Array("h".utf8)), .bulkString(Array("port".utf8))]), .integer(1)] {
            do {
                _ = try SentinelResolver.address(from: bad, masterName: "m")
                Issue.record("accepted \(bad)")
            } catch {
                #expect(error.code == .connectionUnavailable)
            }
        }
        do {
            _ = try SentinelResolver.address(from: .null, masterName: "mygroup")
        } catch {
            #expect(error.message.contains("mygroup"))
        }
    }

    @Test func notMasterRepliesAreRecognised() {
        #expect(RedisConnection.notMasterError(.error("READONLY You can't write against a read only replica.")) == "READONLY")
        #expect(RedisConnection.notMasterError(.error("LOADING Redis is loading the dataset in memory")) == "LOADING")
        #expect(RedisConnection.notMasterError(.error("MASTERDOWN Link with MASTER is down")) == "MASTERDOWN")
        #expect(RedisConnection.notMasterError(.error("ERR wrong number of arguments")) == nil)
        #expect(RedisConnection.notMasterError(.error("READONLYX")) == nil)
        #expect(RedisConnection.notMasterError(.simpleString("READONLY")) == nil)
    }
}
