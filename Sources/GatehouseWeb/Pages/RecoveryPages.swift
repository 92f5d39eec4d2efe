import Foundation
import GatehouseCore
import GatehouseService
import Hummingbird

/// Forgot password (`/account/forgot-password`).
struct RecoveryPages: Sendable {
    let kit: PageKit

    func add(to routes: RouteCollection<BasicRequestContext>) {}
}
