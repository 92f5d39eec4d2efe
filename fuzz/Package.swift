// swift-tools-version:6.1
// Gatehouse fuzzing: a separate package (depending on the root by path) so that the root's
// `swift build` / `swift test` and CI never compile it. Build and run with scripts/fuzz.sh:
//
//   swift build -c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//
// One executable per target, all on FuzzSupport (libFuzzer's driver, the input reader, invariant
// checks). SwiftPM links an executable with `main` defined as the module's entry point, so
// libFuzzer's own `main` is not used: each target's `@main` hands argc/argv to
// `LLVMFuzzerRunDriver`, which runs exactly as libFuzzer's main would (same flags, same corpus
// handling). Each target checks invariants, not only that nothing crashes:
//
// CBORFuzzer     (cbor)     — the WebAuthn parsers: CBOR reader, attestation object, authenticator
//                             data, COSE key, clientDataJSON, the verifier
// TokenFuzzer    (token)    — TokenAuthority's verifier on arbitrary tokens and on tokens signed
//                             over arbitrary headers and claims; sign → verify round trips
// JSONFuzzer     (json)     — JSONObjectReader against a reference RFC 8259 reader; JSONText and
//                             JSONWriter output read back
// BaseEncodingFuzzer (base) — Base32 and Base64URL both ways, against reference decoders
// OTPAuthFuzzer  (otpauth)  — otpauth:// URIs, imported TOTP secrets, typed codes
// SMTPReplyFuzzer (smtp)    — the SMTP client's reply parser over a byte stream in pieces
// RESPFuzzer     (resp)     — hiredis's reader with the Swift conversion and size limit, and the
//                             Swift parsers of replies (CLUSTER SLOTS, redirects, Sentinel,
//                             streams, ROLE) and of commands (cluster slot of a command)
// FastPathFuzzer (fastpath) — NIO's HTTP/1 decoder, configured as a node's, feeding the fast
//                             path's state machine with answers and replays interleaved
//
// The last three use `package` declarations of the root's modules. A module sees another's
// `package` declarations when both are compiled with the same `-package-name`, which SwiftPM sets
// to the package's identity: for the root, the name of its directory. So those targets opt out
// of this package's name (`packageAccess: false`) and take the root's instead.
import Foundation
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The root package's identity as SwiftPM spells it for `-package-name`: its directory's name in
/// lower case, with every character other than a letter, digit or `_` replaced by `_`.
let rootPackageName: String = {
    let directory = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().lastPathComponent.lowercased()
    var name = String(directory.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
    if name.first?.isNumber ?? true { name = "_" + name }
    return name
}()

/// For the targets that use the root's `package` declarations.
let rootPackageAccess: [SwiftSetting] = swiftSettings + [.unsafeFlags(["-package-name", rootPackageName])]

/// A fuzz target: an executable on the shared driver with these products of the root package;
/// `rootPackage` for the targets that use the root's `package` declarations (they take the
/// root's package name instead of this package's).
func fuzzer(_ name: String, gatehouse products: [String], rootPackage: Bool = false, more: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: "gatehouse") } + more,
        packageAccess: !rootPackage,
        swiftSettings: rootPackage ? rootPackageAccess : swiftSettings
    )
}

let package = Package(
    name: "gatehouse-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gatehouse", path: ".."),
        // NIOEmbedded, for running NIO's HTTP/1 decoder without a socket; HTTPTypes for answers.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // The declaration of libFuzzer's driver entry (the library comes with -sanitize=fuzzer).
        .systemLibrary(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], swiftSettings: swiftSettings),
        fuzzer("CBORFuzzer", gatehouse: ["GatehouseCore"]),
        fuzzer("TokenFuzzer", gatehouse: ["GatehouseCore", "GatehouseCrypto"]),
        fuzzer("JSONFuzzer", gatehouse: ["GatehouseCore"]),
        fuzzer("BaseEncodingFuzzer", gatehouse: ["GatehouseCore"]),
        fuzzer("OTPAuthFuzzer", gatehouse: ["GatehouseCore", "GatehouseCrypto"]),
        fuzzer("SMTPReplyFuzzer", gatehouse: ["GatehouseMail"], rootPackage: true),
        fuzzer("RESPFuzzer", gatehouse: ["GatehouseRedis"], rootPackage: true),
        fuzzer("FastPathFuzzer", gatehouse: ["GatehouseHTTP"], rootPackage: true, more: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
    ]
)
