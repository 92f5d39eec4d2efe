public import Foundation

/// Reading and writing secret files (keyring, data key, API keys): written atomically with
/// mode 0600 so a crash never leaves half a file and no other user can read it.
public enum KeyFiles {
    /// Largest key file accepted, so a wrong path cannot make us read a huge file.
    public static let maximumSize = 1 << 20

    /// Reads the file at `path`.
    public static func read(path: String) throws(CoreError) -> Data {
        do {
            let url = URL(fileURLWithPath: path)
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
            guard size <= maximumSize else { throw CoreError(.fileAccess, "\(path) is larger than \(maximumSize) bytes") }
            return try Data(contentsOf: url)
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.fileAccess, "cannot read \(path)", underlying: error)
        }
    }

    /// Writes `data` to `path` via a temporary file in the same folder (mode 0600) and a rename.
    public static func writeSecret(_ data: Data, to path: String) throws(CoreError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temp = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError(.fileAccess, "cannot create \(temp): errno \(errno)") }
        var ok = fchmod(fd, 0o600) == 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while ok, offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; ok = false; break }
                offset += n
            }
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            unlink(temp)
            throw CoreError(.fileAccess, "cannot write \(path): errno \(errno)")
        }
    }
}
