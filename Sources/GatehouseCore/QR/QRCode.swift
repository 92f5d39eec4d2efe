internal import CQRencode

/// A QR code symbol made by libqrencode: a square of dark/light modules.
public struct QRCode: Sendable {
    /// Error-correction levels.
    public enum ErrorCorrection: Sendable {
        case low, medium, quartile, high
    }

    /// Modules per side (without quiet zone).
    public let size: Int
    /// Row-major modules; `true` is dark.
    public let modules: [Bool]

    /// Encodes `text` as 8-bit bytes (otpauth URIs contain lower case, so byte mode is needed).
    public init(encoding text: String, errorCorrection: ErrorCorrection = .medium) throws(CoreError) {
        let level: QRecLevel = switch errorCorrection {
        case .low: QR_ECLEVEL_L
        case .medium: QR_ECLEVEL_M
        case .quartile: QR_ECLEVEL_Q
        case .high: QR_ECLEVEL_H
        }
        // libqrencode reads a NUL-terminated string; an embedded NUL would silently truncate.
        guard !text.utf8.contains(0) else { throw CoreError(.qrEncoding, "text contains NUL") }
        guard let code = QRcode_encodeString8bit(text, 0, level) else {
            throw CoreError(.qrEncoding, "libqrencode could not encode \(text.utf8.count) bytes")
        }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        // Bit 0 of each byte is the module colour (1 = dark); the other bits are metadata.
        let data = UnsafeBufferPointer(start: code.pointee.data, count: width * width)
        self.size = width
        self.modules = data.map { $0 & 1 == 1 }
    }

    /// Whether the module at (`x`, `y`) is dark; outside the symbol is light (quiet zone).
    public func isDark(x: Int, y: Int) -> Bool {
        guard x >= 0, y >= 0, x < size, y < size else { return false }
        return modules[y * size + x]
    }

    /// An SVG document: one path of unit squares, scaled by `moduleSize` pixels, with a quiet zone
    /// of `quietZone` modules (the standard asks for 4).
    public func svg(moduleSize: Int = 4, quietZone: Int = 4) -> String {
        let total = size + 2 * quietZone
        var path = ""
        path.reserveCapacity(size * size * 4)
        for y in 0..<size {
            var x = 0
            while x < size {
                guard isDark(x: x, y: y) else { x += 1; continue }
                var run = 1
                while isDark(x: x + run, y: y) { run += 1 }
                path += "M\(x + quietZone) \(y + quietZone)h\(run)v1h-\(run)z"
                x += run
            }
        }
        let px = total * moduleSize
        return """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(px)" height="\(px)" viewBox="0 0 \(total) \(total)" \
        shape-rendering="crispEdges"><rect width="\(total)" height="\(total)" fill="#fff"/>\
        <path fill="#000" d="\(path)"/></svg>
        """
    }

    /// A terminal rendering with Unicode half blocks: each character covers two module rows.
    ///
    /// With `darkOnLight == false` (the default, for the usual light-on-dark terminal) *light*
    /// modules are drawn as glyph pixels so the symbol reads dark-on-light to a camera.
    public func terminal(quietZone: Int = 2, darkOnLight: Bool = false) -> String {
        let lo = -quietZone, hi = size + quietZone
        var out = ""
        var y = lo
        while y < hi {
            for x in lo..<hi {
                // "ink" is what the terminal draws in the foreground colour.
                let top = isDark(x: x, y: y) == darkOnLight
                let bottom = y + 1 < hi ? isDark(x: x, y: y + 1) == darkOnLight : !darkOnLight
                switch (top, bottom) {
                case (true, true): out += "\u{2588}"
                case (true, false): out += "\u{2580}"
                case (false, true): out += "\u{2584}"
                case (false, false): out += " "
                }
            }
            out += "\n"
            y += 2
        }
        return out
    }

    /// A plain PBM (P1) bitmap with `scale` pixels per module and a quiet zone — handy for
    /// decoders such as zbarimg.
    public func pbm(scale: Int = 4, quietZone: Int = 4) -> String {
        let total = (size + 2 * quietZone) * scale
        var out = "P1\n\(total) \(total)\n"
        for py in 0..<total {
            var row = [UInt8]()
            row.reserveCapacity(total * 2)
            for px in 0..<total {
                let dark = isDark(x: px / scale - quietZone, y: py / scale - quietZone)
                row.append(dark ? UInt8(ascii: "1") : UInt8(ascii: "0"))
                row.append(UInt8(ascii: " "))
            }
            out += String(decoding: row, as: UTF8.self) + "\n"
        }
        return out
    }
}
