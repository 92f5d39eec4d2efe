import Foundation
import GatehouseCore
import Glibc
import Synchronization
import GatehouseSystem

/// A seeded user: its name and secret never change.
package struct LoadUser: Sendable {
    let name: String
    let secret: String
    let totp: TOTP

    /// A user with the 20-byte secret `secret` (SHA-1, 6 digits, 30 s: the enrolment defaults).
    package init(name: String, secret: [UInt8]) throws {
        self.name = name
        self.secret = Base32.encode(secret)
        self.totp = try TOTP(secret: secret)
    }

    func code(step: Int64) -> String { HOTP.format(totp.code(step: UInt64(step)), digits: totp.digits) }

    /// The last step a node may hold as spent after this user's code for `step` was submitted:
    /// a node records the latest step in its window whose code is the one submitted, so a later
    /// step (up to two on, the window's width) that by chance shows the same code is spent with it.
    package func lastStepSpent(bySubmitting step: Int64) -> Int64 {
        let code = totp.code(step: UInt64(step))
        var spent = step
        for later in step + 1...step + 2 where totp.code(step: UInt64(later)) == code { spent = later }
        return spent
    }

    /// Whether a node may rightly accept `code` again, `code` having been accepted as this user's
    /// code for step `acceptedStep`, when it is submitted around step `current`. The node spent the
    /// latest step of its window that showed the code then, which may be `acceptedStep` itself, so
    /// any later step that shows the same digits (one in a million per step) is still unspent to
    /// it: the digits are that step's valid code, not a replay. The node's window at the answer is
    /// taken as `current - 2 ... current + 2`, allowing for its clock a second behind this one
    /// and for the step turning while the request is under way.
    package func replayMayBeAccepted(_ code: String, acceptedStep: Int64, current: Int64) -> Bool {
        (current - 2...current + 2).contains { $0 > acceptedStep && self.code(step: $0) == code }
    }
}

/// What the generator knows about one user's server-side state.
struct LoadUserState {
    /// The highest step submitted as a valid code (accepted or not): never submitted again.
    var lastStep: Int64 = -1
    /// Reserved by a worker for a valid or replay operation.
    var busy = false
    var session: String?
    /// The last accepted code, for replays.
    var accepted: (code: String, step: Int64)?
    /// Replays since the last success: kept under the free-failure allowance so valid codes are never throttled.
    var replaysSinceSuccess = 0
    /// Replays in the current 15-minute window: kept under the per-user failure budget (100 per 15 min).
    var replayWindowStart: Int64 = 0
    var replaysInWindow = 0
    /// A challenge opened before the run for a `check` operation (consumed by it).
    var challenge: String?
    /// A challenge opened before the run for `wrongcheck` operations, and the wrong codes
    /// submitted on it so far.
    var wrongChallenge: String?
    var wrongsSubmitted = 0
}

func loadNow() -> Int64 { Int64(Date().timeIntervalSince1970) }
func loadStep() -> Int64 { loadNow() / 30 }
/// The highest step a node surely accepts now: one past the current step as a node may still see
/// it a second from now. A node keeps time by Redis's clock, through an offset it measures, so
/// just after a step begins here it may still be in the step before, and a code two steps ahead
/// of it would be refused.
func loadHighestStep() -> Int64 { (loadNow() - 1) / 30 + 1 }

/// One lock's share of the per-user bookkeeping: users `s`, `s + S`, `s + 2S`, … of stripe `s`
/// of `S`, and those of them whose pre-opened challenge (for `check`) is not spent yet.
struct LoadStripe {
    var users: [LoadUserState]
    var checkQueue: [Int] = []
    /// Wrong-pool users whose pre-opened challenge still takes wrong codes; the last is used
    /// until its allowance is spent, as an attacker would keep guessing on one challenge.
    var wrongQueue: [Int] = []
}

/// A lock that is a class, so stripes can sit in an array (a `Mutex` cannot).
final class LoadLock<Value>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: sending Value) { mutex = Mutex(value) }
}

/// State shared by the seeding threads and the event loops: per-user bookkeeping under striped
/// locks (one lock for every user, when each connection had its own thread, was contended: a
/// twentieth of the generator's CPU went to waiting on it; several `--threads` would contend the
/// same way), live counters as atomics.
final class LoadShared: Sendable {
    let users: [LoadUser]
    /// Users that take valid codes and replays (never wrong codes, so never throttled).
    let validPool: Range<Int>
    /// Users reserved for wrong codes.
    let wrongPool: Range<Int>
    let stripes: [LoadLock<LoadStripe>]
    let ops = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    let pacer = Mutex<UInt64>(0)

    /// `onlyWrongCodes`: the mix takes nothing but wrong codes, so every user is in the wrong pool.
    init(users: [LoadUser], onlyWrongCodes: Bool = false) {
        self.users = users
        let wrong = onlyWrongCodes ? users.count : max(1, users.count / 10)
        validPool = 0..<(users.count - wrong)
        wrongPool = (users.count - wrong)..<users.count
        let count = min(64, users.count)
        stripes = (0..<count).map { s in
            LoadLock(LoadStripe(users: Array(repeating: LoadUserState(), count: (users.count - s + count - 1) / count)))
        }
    }

    /// Runs `body` on user `index`'s state under its stripe's lock.
    func withUser<R>(_ index: Int, _ body: (inout LoadUserState) -> R) -> R {
        stripes[index % stripes.count].mutex.withLock { body(&$0.users[index / stripes.count]) }
    }

    /// Visits the users of `pool`, stripe by stripe from the one `roll` picks, under each
    /// stripe's lock, until `body` returns a value.
    private func scan<R>(_ pool: Range<Int>, _ roll: Int, _ body: (Int, inout LoadUserState) -> R?) -> R? {
        let count = stripes.count
        for k in 0..<count {
            let s = (roll &+ k) % count
            let found: R? = stripes[s].mutex.withLock { stripe in
                let n = stripe.users.count
                guard n > 0 else { return nil }
                let offset = (roll / count) % n
                for j in 0..<n {
                    let local = (offset + j) % n
                    let i = local * count + s
                    guard pool.contains(i) else { continue }
                    if let r = body(i, &stripe.users[local]) { return r }
                }
                return nil
            }
            if let found { return found }
        }
        return nil
    }

    func randomSession(_ roll: Int) -> String? {
        let count = stripes.count
        return stripes[roll % count].mutex.withLock { stripe in
            let n = stripe.users.count
            for k in 0..<min(n, 16) {
                if let s = stripe.users[(roll / count &+ k * 7919) % n].session { return s }
            }
            return nil
        }
    }

    /// Reserves a valid-pool user with a usable step: the current one or the next (inside the ±1
    /// window, up to ``loadHighestStep()``), above every step already submitted for it.
    func reserveValid(_ roll: Int) -> (index: Int, step: Int64)? {
        let current = loadStep(), highest = loadHighestStep()
        return scan(validPool, roll) { i, state in
            guard !state.busy, state.lastStep < highest else { return nil }
            state.busy = true
            return (i, max(state.lastStep + 1, current))
        }
    }

    /// Records that `step` was submitted for `index` (before the answer: a lost answer must not
    /// lead to reusing the step), with any later step the node spends with it
    /// (``LoadUser/lastStepSpent(bySubmitting:)``).
    func markSubmitted(_ index: Int, step: Int64) {
        let spent = users[index].lastStepSpent(bySubmitting: step)
        withUser(index) { $0.lastStep = max($0.lastStep, spent) }
    }

    func accepted(_ index: Int, code: String, step: Int64, session: String?) {
        withUser(index) { state in
            state.accepted = (code, step)
            state.replaysSinceSuccess = 0
            if let session { state.session = session }
        }
    }

    /// Reserves a valid-pool user with an accepted code to replay, staying inside the throttle's
    /// free failures and the per-user failure budget.
    func reserveReplay(_ roll: Int) -> (index: Int, code: String)? {
        let now = loadNow()
        let current = now / 30
        return scan(validPool, roll) { i, state in
            guard !state.busy, let accepted = state.accepted, state.replaysSinceSuccess < 3 else { return nil }
            if now - state.replayWindowStart >= 900 {
                state.replayWindowStart = now
                state.replaysInWindow = 0
            }
            guard state.replaysInWindow < 40 else { return nil }
            // A code that is by chance also the code of a later step in the window would rightly
            // be accepted: skip that (one-in-a-million) case.
            if users[i].replayMayBeAccepted(accepted.code, acceptedStep: accepted.step, current: current) { return nil }
            state.busy = true
            state.replaysSinceSuccess += 1
            state.replaysInWindow += 1
            return (i, accepted.code)
        }
    }

    /// Reserves a valid-pool user with a pre-opened challenge and a usable step, taking the
    /// challenge (a check consumes it either way). Users with an open challenge wait in their
    /// stripe's queue, so a reservation costs O(1) however many challenges are already spent,
    /// and takes one lock.
    func reserveCheck(_ roll: Int) -> (index: Int, step: Int64, challenge: String)? {
        let current = loadStep(), highest = loadHighestStep()
        let count = stripes.count
        var attempts = 0
        for k in 0..<count where attempts < 64 {
            let s = (roll &+ k) % count
            let found: (Int, Int64, String)? = stripes[s].mutex.withLock { stripe in
                while attempts < 64, let i = stripe.checkQueue.popLast() {
                    attempts += 1
                    let local = i / count
                    guard let challenge = stripe.users[local].challenge else { continue }  // spent
                    guard !stripe.users[local].busy, stripe.users[local].lastStep < highest else {
                        // Busy or out of steps for now: back of the line, try the next stripe.
                        stripe.checkQueue.insert(i, at: 0)
                        return nil
                    }
                    stripe.users[local].busy = true
                    stripe.users[local].challenge = nil
                    return (i, max(stripe.users[local].lastStep + 1, current), challenge)
                }
                return nil
            }
            if let found { return (found.0, found.1, found.2) }
        }
        return nil
    }

    func setChallenge(_ index: Int, _ challenge: String) {
        stripes[index % stripes.count].mutex.withLock { stripe in
            stripe.users[index / stripes.count].challenge = challenge
            stripe.checkQueue.append(index)
        }
    }

    /// Opens user `index` for `wrongcheck` with its pre-opened `challenge`.
    func setWrongChallenge(_ index: Int, _ challenge: String) {
        stripes[index % stripes.count].mutex.withLock { stripe in
            stripe.users[index / stripes.count].wrongChallenge = challenge
            stripe.wrongQueue.append(index)
        }
    }

    /// Reserves a wrong-pool user with a pre-opened challenge that takes more wrong codes (at
    /// most `limit` in all), one in flight per user so answers come back in the order sent.
    /// Returns the user, the challenge and how many wrong codes were submitted on it before.
    func reserveWrongCheck(_ roll: Int, limit: Int) -> (index: Int, challenge: String, before: Int)? {
        let count = stripes.count
        for k in 0..<count {
            let s = (roll &+ k) % count
            let found: (Int, String, Int)? = stripes[s].mutex.withLock { stripe in
                // The last two users of the queue, so one busy user does not block its stripe.
                for position in stride(from: stripe.wrongQueue.count - 1, through: max(0, stripe.wrongQueue.count - 2), by: -1) {
                    let i = stripe.wrongQueue[position]
                    let local = i / count
                    guard !stripe.users[local].busy, let challenge = stripe.users[local].wrongChallenge else { continue }
                    let before = stripe.users[local].wrongsSubmitted
                    stripe.users[local].wrongsSubmitted += 1
                    stripe.users[local].busy = true
                    if before + 1 >= limit {
                        stripe.users[local].wrongChallenge = nil
                        stripe.wrongQueue.remove(at: position)
                    }
                    return (i, challenge, before)
                }
                return nil
            }
            if let found { return (found.0, found.1, found.2) }
        }
        return nil
    }

    func release(_ index: Int) {
        withUser(index) { $0.busy = false }
    }

    /// Rate cap: the next free slot (monotonic nanoseconds).
    func slot(interval: UInt64) -> UInt64 {
        let now = MonotonicClock.now()
        return pacer.withLock { next in
            let slot = max(next, now)
            next = slot + interval
            return slot
        }
    }
}

