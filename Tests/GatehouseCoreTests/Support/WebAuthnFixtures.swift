import GatehouseCore
import GatehouseTesting
import Testing

/// The WebAuthnError a throwing body raised, or nil (another error is recorded as an issue: the
/// fixtures themselves failed).
func webAuthnError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> WebAuthnError? {
    do { try body() } catch let error as WebAuthnError { return error } catch {
        Issue.record(error, "not a WebAuthnError", sourceLocation: sourceLocation)
    }
    return nil
}

/// The CBOR error a throwing body raised, or nil (another error is recorded as an issue).
func cborError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> CBORError? {
    do { try body() } catch let error as CBORError { return error } catch {
        Issue.record(error, "not a CBORError", sourceLocation: sourceLocation)
    }
    return nil
}
