import Foundation
import GatehouseCore
import GatehouseTesting
import Testing

/// Scannability is proven by decoding each rendering with a real decoder (zbarimg, from Debian's
/// zbar-tools), not by comparing strings.
@Suite("QR codes decode with a real decoder")
struct QRCodeTests {
    static let uri = OTPAuthURI(
        issuer: "Example Mail", account: "jane.doe+2fa@example.org", secret: Array("12345678901234567890".utf8)
    ).uri

    static func decode(file: URL) async throws -> String {
        let zbarimg = try External.locate(.zbarimg)
        let result = try await External.run(zbarimg, ["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", file.path])
        #expect(result.status == 0, "zbarimg failed: \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .newlines)
    }

    @Test func pbmRendering() async throws {
        let dir = try External.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("code.pbm")
        try QRCode(encoding: Self.uri).pbm().write(to: file, atomically: true, encoding: .ascii)
        #expect(try await Self.decode(file: file) == Self.uri)
    }

    @Test func svgRendering() async throws {
        let dir = try External.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let svg = dir.appendingPathComponent("code.svg"), png = dir.appendingPathComponent("code.png")
        let qr = try QRCode(encoding: Self.uri)
        try qr.svg().write(to: svg, atomically: true, encoding: .utf8)
        let rsvg = try External.locate(.rsvgConvert)
        let converted = try await External.run(rsvg, ["-o", png.path, svg.path])
        #expect(converted.status == 0, "rsvg-convert failed: \(converted.stderr)")
        #expect(try await Self.decode(file: png) == Self.uri)
    }

    /// Reads the half-block terminal text back into pixels, as a camera would see the screen.
    static func pixels(fromTerminal text: String, darkOnLight: Bool) -> [[Bool]] {
        var rows: [[Bool]] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            var top: [Bool] = [], bottom: [Bool] = []
            for ch in line {
                let (t, b): (Bool, Bool) = switch ch {
                case "\u{2588}": (true, true)
                case "\u{2580}": (true, false)
                case "\u{2584}": (false, true)
                default: (false, false)
                }
                // Ink is light on a dark terminal: dark pixel = no ink, unless darkOnLight.
                top.append(darkOnLight ? t : !t)
                bottom.append(darkOnLight ? b : !b)
            }
            rows.append(top)
            rows.append(bottom)
        }
        return rows
    }

    @Test(arguments: [false, true])
    func terminalRendering(darkOnLight: Bool) async throws {
        let qr = try QRCode(encoding: Self.uri)
        let text = qr.terminal(quietZone: 4, darkOnLight: darkOnLight)
        let pixels = Self.pixels(fromTerminal: text, darkOnLight: darkOnLight)
        // Upscale 4× into a PBM, as a screen photo would be.
        let scale = 4
        let height = pixels.count * scale, width = (pixels.first?.count ?? 0) * scale
        var pbm = "P1\n\(width) \(height)\n"
        for row in pixels {
            let line = row.flatMap { Array(repeating: $0 ? "1" : "0", count: scale) }.joined(separator: " ")
            for _ in 0..<scale { pbm += line + "\n" }
        }
        let dir = try External.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("terminal.pbm")
        try pbm.write(to: file, atomically: true, encoding: .ascii)
        #expect(try await Self.decode(file: file) == Self.uri)
    }

    @Test("the symbol has QR structure: finder patterns in three corners")
    func finderPatterns() throws {
        let qr = try QRCode(encoding: Self.uri)
        #expect(qr.size >= 21 && (qr.size - 17) % 4 == 0)
        for (x0, y0) in [(0, 0), (qr.size - 7, 0), (0, qr.size - 7)] {
            #expect(qr.isDark(x: x0, y: y0) && qr.isDark(x: x0 + 6, y: y0 + 6) && !qr.isDark(x: x0 + 1, y: y0 + 1) && qr.isDark(x: x0 + 3, y: y0 + 3))
        }
    }

    @Test("text too long for any QR version is an error, not a crash")
    func tooLong() {
        #expect(throws: CoreError.self) { try QRCode(encoding: String(repeating: "x", count: 5000)) }
        #expect(throws: CoreError.self) { try QRCode(encoding: "a\u{0}b") }
    }
}
