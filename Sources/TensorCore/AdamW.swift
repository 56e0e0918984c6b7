import CKernels

/// AdamW state for one parameter tensor: the first and second moment estimates.
public struct AdamWState: Sendable {
    public var firstMoment: Tensor
    public var secondMoment: Tensor

    public init(like parameter: Tensor) {
        firstMoment = Tensor(zeros: parameter.shape)
        secondMoment = Tensor(zeros: parameter.shape)
    }
}

/// torch.optim.AdamW's hyperparameters and update (decoupled weight decay, bias correction).
public struct AdamW: Sendable, Equatable {
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float

    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// Applies step `step` (1 for the first) with learning rate `learningRate`. Runs `tk_adamw_step`.
    public func update(_ parameter: inout Tensor, gradient: Tensor, state: inout AdamWState, learningRate: Float, step: Int) {
        precondition(step >= 1, "AdamW steps count from 1")
        precondition(parameter.shape == gradient.shape && state.firstMoment.shape == parameter.shape, "AdamW: shapes differ")
        if !parameter.isContiguous { parameter = parameter.contiguous() }
        let grad = gradient.contiguous()
        let bias1 = 1 - pow(beta1, Float(step)), bias2 = 1 - pow(beta2, Float(step))
        let count = parameter.count
        parameter.withUnsafeMutablePointer { p in
            grad.withUnsafePointer { g in
                state.firstMoment.withUnsafeMutablePointer { m in
                    state.secondMoment.withUnsafeMutablePointer { v in
                        tk_adamw_step(p, g, m, v, count, learningRate, beta1, beta2, epsilon, weightDecay, bias1, bias2)
                    }
                }
            }
        }
    }

    private func pow(_ base: Float, _ exponent: Float) -> Float { Float(_power(Double(base), Double(exponent))) }
}

/// transformers' learning-rate schedules with linear warmup.
public enum LearningRateSchedule: String, Sendable, Codable, CaseIterable {
    case constant, linear, cosine

    /// The rate at `step` (0-based, as transformers' LambdaLR sees it) of `totalSteps`.
    public func rate(base: Float, step: Int, warmupSteps: Int, totalSteps: Int) -> Float {
        if step < warmupSteps { return base * Float(step) / Float(max(1, warmupSteps)) }
        switch self {
        case .constant:
            return base
        case .linear:
            return base * max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return base * Float(max(0, 0.5 * (1 + _cosine(Double.pi * progress))))
        }
    }
}

/// The joint L2 norm of `gradients`, accumulated in Double.
public func gradientNorm(_ gradients: [Tensor]) -> Float {
    Float(gradients.reduce(Double(0)) { total, gradient in
        let n = Double(BLAS.norm(gradient.contiguous()))
        return total + n * n
    }.squareRoot())
}

/// torch.nn.utils.clip_grad_norm_: scales `gradients` by max_norm / (norm + 1e-6) when their
/// joint L2 norm exceeds `maxNorm`. Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: inout [Tensor], maxNorm: Float) -> Float {
    let norm = gradientNorm(gradients)
    let coefficient = Float(Double(maxNorm) / (Double(norm) + 1e-6))
    if coefficient < 1 {
        for index in gradients.indices { BLAS.scale(&gradients[index], by: coefficient) }
    }
    return norm
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _power(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
@inline(__always) private func _cosine(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) private func _power(_ x: Double, _ y: Double) -> Double { Darwin.pow(x, y) }
@inline(__always) private func _cosine(_ x: Double) -> Double { Darwin.cos(x) }
#endif
