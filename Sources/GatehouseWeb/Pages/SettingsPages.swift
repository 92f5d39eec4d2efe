import Foundation
import GatehouseCore
import GatehouseService
import Hummingbird

/// The settings page (`/account/settings`).
struct SettingsPages: Sendable {
    let kit: PageKit
    let account: AccountPrincipal

    func add(to routes: RouteCollection<BasicRequestContext>) {}
}
