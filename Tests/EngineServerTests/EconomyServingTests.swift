import Foundation
import Store
import Testing
import TributaryClient
import WireProtocol

/// The replies of one request up to its end, and the error that ended it, if one did.
func repliesAndError(_ stream: ReplyStream) async -> (replies: [Message], error: ServerError?) {
    var all: [Message] = []
    do {
        for try await reply in stream { all.append(reply) }
        return (all, nil)
    } catch let error as ServerError {
        return (all, error)
    } catch {
        Issue.record("unexpected \(error)")
        return (all, nil)
    }
}

extension ProcessWideSuites {
    @Suite(.serialized) struct EconomyServingTests {
        @Test("A paid inference debits its payer; without the funds it is refused before any token; its key charges it once across connections")
        func paidInferencesBalance() async throws {
            let fixture = try await AttributedServer.start()
            let server = fixture.server
            let store = server.store
            let payer = server.contributor
            let connection = try await server.connect()
            _ = try await connection.call(.adapterLoad(Wire.AdapterLoad(adapter: fixture.adapter.rawValue)))
            let prompt = fixture.forecastPrompt

            // Paid under a key: the payer's fee payment comes first and the inference's entries net to zero.
            let first = await repliesAndError(try await connection.stream(
                attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 1_000_000, idempotencyKey: "order-17")))
            #expect(first.error == nil)
            guard case .rewardSplit(let split)? = first.replies.last else {
                Issue.record("expected REWARD_SPLIT last, got \(first.replies.map(\.type))")
                return
            }
            let inference = try store.inference(InferenceID(split.inference))
            #expect(inference.payer == payer && inference.idempotencyKey == "order-17" && inference.fee == 1_000_000)
            let entries = try store.ledgerEntries(for: inference.id)
            #expect(entries.first?.kind == .feePayment && entries.first?.account == .contributor(payer))
            #expect(entries.first?.amount == 1_000_000)
            #expect(entries.reduce(0) { $0 + $1.signedAmount } == 0)
            let earned = entries.filter { !$0.kind.isDebit && $0.account == .contributor(payer) }.reduce(0) { $0 + $1.amount }
            let afterFirst = try store.balance(of: .contributor(payer))
            #expect(afterFirst == AttributedServer.ownerFunds - 1_000_000 + earned)
            let head = try #require(try store.ledgerHead())

            // The same key on a new connection: the original inference and split, charged once.
            let retryConnection = try await server.connect()
            _ = try await retryConnection.call(.adapterLoad(Wire.AdapterLoad(adapter: fixture.adapter.rawValue)))
            let retry = await repliesAndError(try await retryConnection.stream(
                attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 1_000_000, idempotencyKey: "order-17")))
            #expect(retry.error == nil)
            guard case .rewardSplit(let retrySplit)? = retry.replies.last,
                case .attribution(let retryAttribution)? = retry.replies.dropLast().last
            else {
                Issue.record("expected ATTRIBUTION and REWARD_SPLIT last, got \(retry.replies.map(\.type))")
                return
            }
            #expect(retrySplit == split)
            #expect(retryAttribution.inference == split.inference)
            #expect(try store.inferenceCount() == 1)
            #expect(try store.ledgerHead() == head)
            #expect(try store.balance(of: .contributor(payer)) == afterFirst)
            // The key with another fee names another request: refused before any token.
            let changed = await repliesAndError(try await retryConnection.stream(
                attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 2_000_000, idempotencyKey: "order-17")))
            #expect(changed.replies.isEmpty && changed.error?.errorCode == .failedPrecondition)
            #expect(changed.error?.message.hasPrefix("idempotency key \"order-17\" was already used") == true)
            await retryConnection.close()

            // The forecaster earned a share, but not 10 units: refused before generation, nothing written.
            let forecaster = try await server.connect(token: fixture.forecaster.token)
            let forecasterBalance = try store.balance(of: .contributor(fixture.forecaster.id))
            func tokensGenerated() async throws -> UInt64 {
                guard case .statsReport(let stats) = try await forecaster.call(.stats(Wire.Stats())) else { return .max }
                return stats.tokensGenerated
            }
            let tokensBefore = try await tokensGenerated()
            let poor = await repliesAndError(try await forecaster.stream(
                attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 10_000_000, idempotencyKey: "too-much")))
            #expect(poor.replies.isEmpty, "no TOKEN before the refusal: \(poor.replies.map(\.type))")
            #expect(poor.error?.errorCode == .failedPrecondition)
            #expect(poor.error?.message == "insufficient funds: balance \(forecasterBalance), fee 10000000 (contributor \(fixture.forecaster.id.rawValue))")
            #expect(try await tokensGenerated() == tokensBefore)
            // A fee past every bound is an invalid argument.
            let huge = await repliesAndError(try await forecaster.stream(
                attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: .max)))
            #expect(huge.replies.isEmpty && huge.error?.errorCode == .invalidArgument)
            #expect(try store.inferenceCount() == 1 && store.ledgerHead() == head)

            // The operator deposits to the forecaster (a retry credits once); then the fee is paid.
            let treasurer = try await server.connect(token: fixture.treasurer.token)
            let deposit = Message.deposit(Wire.Deposit(
                contributor: fixture.forecaster.id.rawValue, amount: 20_000_000, memo: "top-up", idempotencyKey: "top-up-1"))
            guard case .deposited(let deposited) = try await treasurer.call(deposit),
                case .deposited(let again) = try await treasurer.call(deposit)
            else {
                Issue.record("expected DEPOSITED")
                return
            }
            #expect(!deposited.replayed && deposited.balance == forecasterBalance + 20_000_000)
            #expect(deposited.entry.kind == .deposit && deposited.entry.contributor == fixture.forecaster.id.rawValue)
            #expect(deposited.entry.subjectContributor == fixture.treasurer.id.rawValue && deposited.entry.memo == "top-up")
            #expect(again.replayed && again.entry == deposited.entry && again.balance == deposited.balance)
            let paid = await repliesAndError(try await forecaster.stream(
                attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 10_000_000, idempotencyKey: "too-much")))
            #expect(paid.error == nil)
            #expect(try store.inferenceCount() == 2)

            // Conservation over the wire: the balances sum to the deposits.
            guard case .ledgerVerification(let verified) = try await connection.call(.ledgerVerify(Wire.LedgerVerify(anchors: []))),
                case .balances(let balances) = try await connection.call(.ledgerBalances(Wire.LedgerBalances(contributor: nil)))
            else {
                Issue.record("expected LEDGER_VERIFICATION and BALANCES")
                return
            }
            let deposits = AttributedServer.ownerFunds + 20_000_000
            #expect(verified.broken == nil && verified.deposits == deposits && verified.balances == deposits)
            #expect(balances.balances.reduce(0) { $0 + $1.amount } == deposits)

            await treasurer.close()
            await forecaster.close()
            await connection.close()
            try await server.stop()
        }

        @Test("DEPOSIT: operators only, every field range-checked, nothing written when refused")
        func depositRefusals() async throws {
            let server = try await TestServer.start()
            let store = server.store
            let treasurer = try store.createContributor(displayName: "treasurer", role: .operator)
            let owner = try await server.connect()
            let anonymous = try await server.connect(token: "")
            let operatorConnection = try await server.connect(token: treasurer.token)
            func deposit(_ contributor: Int64, _ amount: Int64, key: String = "k") -> Message {
                .deposit(Wire.Deposit(contributor: contributor, amount: amount, memo: "", idempotencyKey: key))
            }
            let target = server.contributor.rawValue
            let cases: [(TributaryConnection, Message, ErrorCode)] = [
                (owner, deposit(target, 1_000), .permissionDenied),
                (anonymous, deposit(target, 1_000), .unauthenticated),
                (operatorConnection, deposit(target, 0), .invalidArgument),
                (operatorConnection, deposit(target, -1), .invalidArgument),
                (operatorConnection, deposit(target, MoneyBounds.maximumDeposit + 1), .invalidArgument),
                (operatorConnection, deposit(0, 1_000), .invalidArgument),
                (operatorConnection, deposit(999, 1_000), .notFound),
                (operatorConnection, deposit(target, 1_000, key: ""), .invalidArgument),
            ]
            for (client, request, code) in cases {
                let error = await #expect(throws: ServerError.self) { _ = try await client.call(request) }
                #expect(error?.errorCode == code, "\(request): \(error?.message ?? "")")
            }
            #expect(try store.ledgerHead() == nil)
            #expect(try store.balances().isEmpty)
            let error = await #expect(throws: ServerError.self) { _ = try await owner.call(deposit(target, 1_000)) }
            #expect(error?.errorCode == .permissionDenied && error?.message.contains("needs an operator") == true)

            guard case .deposited(let done) = try await operatorConnection.call(deposit(target, 1_000)) else {
                Issue.record("expected DEPOSITED")
                return
            }
            #expect(done.balance == 1_000 && done.entry.seq == 1 && !done.replayed)
            // The same key for another amount names a different deposit.
            let reused = await #expect(throws: ServerError.self) { _ = try await operatorConnection.call(deposit(target, 2_000)) }
            #expect(reused?.errorCode == .failedPrecondition)
            #expect(try store.balance(of: .contributor(server.contributor)) == 1_000)
            await anonymous.close()
            await owner.close()
            await operatorConnection.close()
            try await server.stop()
        }
    }
}
