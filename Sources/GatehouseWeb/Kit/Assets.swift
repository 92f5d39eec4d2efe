import HTTPTypes
import Hummingbird
import NIOCore

/// The style sheet and the two small scripts, served from the binary. Script only where a
/// browser API needs it: the clipboard (copy an app password) and printing (backup codes).
enum Assets {
    /// Copies the text of the element named by a button's `data-copy` (an element id).
    static let copyScript = #"""
document.querySelectorAll('[data-copy]').forEach(function (button) {
  button.addEventListener('click', function () {
    var source = document.getElementById(button.getAttribute('data-copy'));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent.replace(/\s+/g, '')).then(function () {
      button.textContent = 'Copied';
    });
  });
});
"""#

    /// Prints the page from a `data-print` button.
    static let printScript = #"""
document.querySelectorAll('[data-print]').forEach(function (button) {
  button.addEventListener('click', function () { window.print(); });
});
"""#

    static func response(_ name: Substring) -> Response? {
        let (type, text): (String, String)
        switch name {
        case "gatehouse.css": (type, text) = ("text/css; charset=utf-8", Layout.css)
        case "copy.js": (type, text) = ("text/javascript; charset=utf-8", copyScript)
        case "print.js": (type, text) = ("text/javascript; charset=utf-8", printScript)
        default: return nil
        }
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=3600"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
