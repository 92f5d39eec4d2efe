/// Runs `body` with `resource` and then `cleanup`, whether `body` returns or throws: the
/// `withServer`/`withDeployment` helpers of this module are this with their own start and cleanup.
public func scoped<Resource, T>(
    _ resource: Resource,
    cleanup: (Resource) async -> Void,
    _ body: (Resource) async throws -> T
) async throws -> T {
    let result: T
    do {
        result = try await body(resource)
    } catch {
        await cleanup(resource)
        throw error
    }
    await cleanup(resource)
    return result
}
