import Foundation
import GatehouseSystem

#if canImport(Glibc)
import Glibc
#endif

/// A program outside the Swift build that Gatehouse's tests, scripts or benchmarks start, with
/// the Debian or PyPI package that provides it.
///
/// ``all`` is the one table of them. `scripts/bootstrap.sh` carries the same table and installs
/// from it (`--tests` for everything the suite starts, `--bench` for the benchmarks as well), and
/// a test compares the two. Tests find programs only through ``locate()``, so a missing peer is a
/// failure that names the package to install, never a skip.
public struct ExternalProgram: Sendable, Hashable, CustomStringConvertible {
    /// Where the program comes from.
    public enum Source: String, Sendable, Hashable {
        case debian
        case pypi
    }

    /// Which `scripts/bootstrap.sh` mode installs it: `run` (plain), `tests` (`--tests`) or
    /// `bench` (`--bench`). Every mode installs the groups before it as well.
    public enum Group: String, Sendable, Hashable, CaseIterable {
        case run
        case tests
        case bench
    }

    /// The executable's name (looked up on PATH and in the sbin directories); an absolute path for
    /// a file that is not on PATH (a daemon's service binary, a loadable module), present when the
    /// file exists; or for a PyPI entry the Python module it provides.
    public let name: String
    public let group: Group
    public let source: Source
    /// The package to install.
    public let package: String

    public init(_ name: String, group: Group, source: Source, package: String) {
        self.name = name
        self.group = group
        self.source = source
        self.package = package
    }

    public var description: String { "\(self.name) (\(self.source.rawValue) package \(self.package))" }

    public static let redisServer = ExternalProgram("redis-server", group: .run, source: .debian, package: "redis-server")
    public static let redisCLI = ExternalProgram("redis-cli", group: .run, source: .debian, package: "redis-tools")
    public static let python3 = ExternalProgram("python3", group: .tests, source: .debian, package: "python3")
    public static let pip3 = ExternalProgram("pip3", group: .tests, source: .debian, package: "python3-pip")
    public static let curl = ExternalProgram("curl", group: .tests, source: .debian, package: "curl")
    public static let nginx = ExternalProgram("nginx", group: .tests, source: .debian, package: "nginx")
    public static let zbarimg = ExternalProgram("zbarimg", group: .tests, source: .debian, package: "zbar-tools")
    public static let rsvgConvert = ExternalProgram("rsvg-convert", group: .tests, source: .debian, package: "librsvg2-bin")
    /// Headless Chromium, for the browser tests of the pages (`Tests/browser/flows.py`).
    public static let chromium = ExternalProgram("chromium", group: .tests, source: .debian, package: "chromium")
    /// The WebDriver server through which Selenium drives Chromium.
    public static let chromedriver = ExternalProgram("chromedriver", group: .tests, source: .debian, package: "chromium-driver")
    /// PyJWT, for token interoperability.
    public static let pyJWT = ExternalProgram("jwt", group: .tests, source: .pypi, package: "pyjwt")
    public static let pythonCryptography = ExternalProgram("cryptography", group: .tests, source: .pypi, package: "cryptography")
    /// The SMTP server mailed codes are delivered to (``SMTPServerProcess``).
    public static let aiosmtpd = ExternalProgram("aiosmtpd", group: .tests, source: .pypi, package: "aiosmtpd")
    /// Selenium, the browser tests' WebDriver client; always given chromedriver's path, so it
    /// never tries to download a driver.
    public static let selenium = ExternalProgram("selenium", group: .tests, source: .pypi, package: "selenium")
    /// Schemathesis, which the contract test (`ContractTests`) runs as `python3 -m schemathesis.cli`
    /// against `docs/openapi.yaml` and a live node.
    public static let schemathesis = ExternalProgram("schemathesis", group: .tests, source: .pypi, package: "schemathesis==4.32.5")
    public static let wrk = ExternalProgram("wrk", group: .bench, source: .debian, package: "wrk")
    public static let jq = ExternalProgram("jq", group: .bench, source: .debian, package: "jq")
    public static let redisBenchmark = ExternalProgram("redis-benchmark", group: .bench, source: .debian, package: "redis-tools")
    /// `openssl speed`, the token benchmarks' reference.
    public static let openssl = ExternalProgram("openssl", group: .bench, source: .debian, package: "openssl")
    /// `perf record`, for `benchmarks/profile.sh`'s CPU breakdown of a node.
    public static let perf = ExternalProgram("perf", group: .bench, source: .debian, package: "linux-perf")
    /// gnuplot without X11 (SVG and PNG terminals), which `benchmarks/plot.sh` draws the
    /// benchmarks' charts with.
    public static let gnuplot = ExternalProgram("gnuplot", group: .bench, source: .debian, package: "gnuplot-nox")
    /// Dovecot's master process (``DovecotProcess``); the binaries and module below are what it
    /// starts and loads for IMAP, POP3, submission and the Gatehouse passdb.
    public static let dovecot = ExternalProgram("dovecot", group: .tests, source: .debian, package: "dovecot-core")
    public static let dovecotIMAP = ExternalProgram("/usr/lib/dovecot/imap", group: .tests, source: .debian, package: "dovecot-imapd")
    public static let dovecotPOP3 = ExternalProgram("/usr/lib/dovecot/pop3", group: .tests, source: .debian, package: "dovecot-pop3d")
    public static let dovecotSubmission = ExternalProgram("/usr/lib/dovecot/submission", group: .tests, source: .debian, package: "dovecot-submissiond")
    public static let dovecotLua = ExternalProgram("/usr/lib/dovecot/modules/auth/libauthdb_lua.so", group: .tests, source: .debian, package: "dovecot-auth-lua")
    /// nginx's mail proxy module (`load_module`), for nginx in front of IMAP/POP/SMTP.
    public static let nginxMail = ExternalProgram("/usr/lib/nginx/modules/ngx_mail_module.so", group: .tests, source: .debian, package: "libnginx-mod-mail")

    /// Every external program, in `scripts/bootstrap.sh`'s order.
    public static let all: [ExternalProgram] = [
        .redisServer, .redisCLI, .python3, .pip3, .curl, .nginx, .zbarimg, .rsvgConvert, .chromium, .chromedriver,
        .pyJWT, .pythonCryptography, .aiosmtpd, .selenium, .schemathesis, .dovecot, .dovecotIMAP, .dovecotPOP3, .dovecotSubmission, .dovecotLua,
        .nginxMail, .wrk, .jq, .redisBenchmark, .openssl, .perf, .gnuplot,
    ]

    /// A program that is not installed; the message names the package and the command that
    /// installs it.
    public struct Missing: Error, CustomStringConvertible {
        public let program: ExternalProgram
        public let detail: String

        public var description: String {
            let install =
                switch self.program.source {
                case .debian: "apt-get install -y \(self.program.package)"
                case .pypi: "python3 -m pip install \(self.program.package)"
                }
            let flag = self.program.group == .run ? "" : " --\(self.program.group.rawValue)"
            return "\(self.program.name) is missing (\(self.detail)): it comes from the \(self.program.source == .debian ? "Debian" : "PyPI") "
                + "package '\(self.program.package)' — `\(install)`, or `scripts/bootstrap.sh\(flag)` installs it. "
                + "Gatehouse's tests use the real program and do not skip."
        }
    }

    /// The executable's path (for an absolute-path entry, that path); for a PyPI entry, the
    /// `python3` that imports the module.
    public func locate() throws(Missing) -> String {
        switch self.source {
        case .debian where self.name.hasPrefix("/"):
            guard FileManager.default.fileExists(atPath: self.name) else {
                throw Missing(program: self, detail: "the file does not exist")
            }
            return self.name
        case .debian:
            guard let path = Self.search(self.name) else {
                throw Missing(program: self, detail: "not on PATH, nor in /usr/sbin, /usr/bin, /usr/local/bin")
            }
            return path
        case .pypi:
            guard let python = Self.search("python3") else {
                throw Missing(program: self, detail: "python3 itself is not installed (Debian package python3)")
            }
            guard Self.imports(self.name, python: python) else {
                throw Missing(program: self, detail: "`\(python) -c 'import \(self.name)'` fails")
            }
            return python
        }
    }

    private static func search(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        // Debian installs daemons such as nginx in /usr/sbin, which a non-root PATH lacks.
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin"]
        return directories.lazy.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether `python -c 'import module'` succeeds (bounded: killed after 30 s). Synchronous,
    /// as ``locate()`` is: the calling thread blocks until the exit
    /// (``ChildProcess/waitForExitBlocking(_:timeout:)``).
    private static func imports(_ module: String, python: String) -> Bool {
        guard let pid = try? ChildProcess.spawn(python, ["-c", "import \(module)"], output: .file("/dev/null")) else {
            return false
        }
        guard let status = ChildProcess.waitForExitBlocking(pid, timeout: .seconds(30)) else {
            ChildProcess.killBlocking(pid)
            return false
        }
        return status == 0
    }
}
