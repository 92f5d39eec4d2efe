import GatehouseLoad
import Testing

@Suite("load users")
struct LoadUserTests {
    @Test("a submitted code spends a later step that shows the same code, and only then")
    func sharedCodeSpendsLaterStep() throws {
        // With the RFC 6238 SHA-1 seed, steps 57,766,335 and 57,766,336 both show 251166.
        let seed = Array("12345678901234567890".utf8)
        let user = try LoadUser(name: "u@load.example", secret: seed)
        #expect(user.lastStepSpent(bySubmitting: 57_766_335) == 57_766_336)
        #expect(user.lastStepSpent(bySubmitting: 57_766_334) == 57_766_334)
        #expect(user.lastStepSpent(bySubmitting: 57_766_336) == 57_766_336)
    }
}
