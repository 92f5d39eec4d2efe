import Mustache

/// The pages' Mustache templates, compiled once at start. They live in the binary (the
/// `Templates/` files), so a node needs no resource folder beside it. Every page extends
/// `layout` (`{{<layout}}{{$content}}…{{/content}}{{/layout}}`); Mustache escapes every value.
struct PageTemplates: Sendable {
    let library: MustacheLibrary

    /// Every template, by name.
    static let sources: [String: String] = [
        "layout": Layout.page,
        "message": Layout.message,
        "second-step": SignInTemplates.secondStep,
        "demo-login": DemoTemplates.login,
        "demo-inbox": DemoTemplates.inbox,
        "demo-reset": DemoTemplates.reset,
    ].merging(EnrollmentTemplates.all, uniquingKeysWith: { a, _ in a })
        .merging(SettingsTemplates.all, uniquingKeysWith: { a, _ in a })
        .merging(RecoveryTemplates.all, uniquingKeysWith: { a, _ in a })

    init() throws {
        var library = MustacheLibrary()
        for (name, text) in Self.sources { try library.register(text, named: name) }
        self.library = library
    }

    func render(_ name: String, _ values: [String: Any]) -> String {
        library.render(values, withTemplate: name) ?? "<!doctype html><title>Error</title><p>Missing page template \(name)."
    }
}
