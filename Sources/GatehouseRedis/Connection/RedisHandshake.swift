/// What every connection to a data node sends first, as one pipeline: `AUTH` (when the URL has
/// a password), `SELECT` (a database other than 0), `CLIENT SETNAME` (when configured) and `PING`.
enum RedisHandshake {
    static func commands(url: RedisURL, clientName: String?) -> [RedisCommand] {
        var commands: [RedisCommand] = []
        if let password = url.password {
            if let user = url.user {
                commands.append(RedisCommand("AUTH", user, password))
            } else {
                commands.append(RedisCommand("AUTH", password))
            }
        }
        if url.database != 0 {
            commands.append(RedisCommand("SELECT", url.database))
        }
        if let clientName {
            commands.append(RedisCommand("CLIENT", "SETNAME", clientName))
        }
        // PING proves the server is answering, not just accepting: a stopped (SIGSTOP) server's
        // kernel still completes the TCP handshake.
        commands.append(RedisCommand("PING"))
        return commands
    }
}
