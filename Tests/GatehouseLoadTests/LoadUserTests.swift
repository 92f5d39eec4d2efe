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

    @Test("a replay is held back when a later step in the window shows the accepted code")
    func replayOfSharedCodeIsHeldBack() throws {
        // Accepted as step 57,766,335's code, 251166 is also step 57,766,336's: a node that spent
        // only 57,766,335 rightly takes it again as 57,766,336's code while that step is in its
        // window. The generator also counts 57,766,336 as spent (it never submits it itself), so
        // its own last step cannot tell it this.
        let seed = Array("12345678901234567890".utf8)
        let user = try LoadUser(name: "u@load.example", secret: seed)
        for current: Int64 in 57_766_334...57_766_338 {
            #expect(user.replayMayBeAccepted("251166", acceptedStep: 57_766_335, current: current))
        }
        // Spent at the later of the two steps, or far from them, the digits are only a replay.
        for current: Int64 in [57_766_334, 57_766_336, 57_766_338] {
            #expect(!user.replayMayBeAccepted("251166", acceptedStep: 57_766_336, current: current))
        }
        #expect(!user.replayMayBeAccepted("251166", acceptedStep: 57_766_335, current: 57_766_339))
        #expect(!user.replayMayBeAccepted("251166", acceptedStep: 57_766_335, current: 57_766_000))
    }
}
