import Foundation
import Testing
import TensorCore

/// torch.optim.AdamW, transformers' schedules and clip_grad_norm_ on fixed inputs
/// (Tests/TrainingTests/make_fixtures.py).
@Suite struct OptimizerTests {
    struct Fixture: Decodable {
        struct AdamWCase: Decodable {
            let lr, beta1, beta2, eps, weight_decay: Float
            let initial: [Float]
            let grads: [[Float]]
            let after: [[Float]]
        }
        struct ClipCase: Decodable {
            let grads: [[Float]]
            let shapes: [[Int]]
            let max_norm: Float
            let norm: Float
            let clipped: [[Float]]
        }
        let adamw: AdamWCase
        let cosine: [Float]
        let linear: [Float]
        let clip: ClipCase
    }

    static let fixture: Fixture = {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/optimizer.json")
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    @Test func adamWMatchesTorch() {
        let f = Self.fixture.adamw
        let optimizer = AdamW(beta1: f.beta1, beta2: f.beta2, epsilon: f.eps, weightDecay: f.weight_decay)
        var parameter = Tensor(shape: [7, 5], scalars: f.initial)
        var state = AdamWState(like: parameter)
        for (step, gradient) in f.grads.enumerated() {
            optimizer.update(&parameter, gradient: Tensor(shape: [7, 5], scalars: gradient), state: &state, learningRate: f.lr, step: step + 1)
            let worst = zip(parameter.scalars, f.after[step]).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            #expect(worst <= 2e-6, "step \(step + 1): worst relative error \(worst)")
        }
    }

    @Test(arguments: [LearningRateSchedule.cosine, .linear])
    func schedulesMatchTransformers(schedule: LearningRateSchedule) {
        let expected = schedule == .cosine ? Self.fixture.cosine : Self.fixture.linear
        for (step, rate) in expected.enumerated() {
            let ours = schedule.rate(base: 2e-3, step: step, warmupSteps: 5, totalSteps: 20)
            #expect(abs(ours - rate) <= 1e-9 + 1e-6 * rate, "step \(step): \(ours) vs \(rate)")
        }
        #expect(LearningRateSchedule.constant.rate(base: 2e-3, step: 10, warmupSteps: 5, totalSteps: 20) == 2e-3)
    }

    @Test func clippingMatchesTorch() {
        let f = Self.fixture.clip
        var gradients = zip(f.shapes, f.grads).map { Tensor(shape: $0, scalars: $1) }
        let norm = clipGradientNorm(&gradients, maxNorm: f.max_norm)
        #expect(abs(norm - f.norm) <= 1e-5 * f.norm)
        for (gradient, expected) in zip(gradients, f.clipped) {
            #expect(zip(gradient.scalars, expected).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
        }
        var small = [Tensor(shape: [2], scalars: [0.1, 0.2])]
        clipGradientNorm(&small, maxNorm: 1)
        #expect(small[0].scalars == [0.1, 0.2], "under the limit nothing changes")
    }
}
