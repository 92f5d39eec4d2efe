import Foundation
import GatehouseCore
import GatehouseService
import Hummingbird

/// Turning two-step on (`/account/enroll`).
struct EnrollmentPages: Sendable {
    let kit: PageKit
    let account: AccountPrincipal

    func add(to routes: RouteCollection<BasicRequestContext>) {}
}
