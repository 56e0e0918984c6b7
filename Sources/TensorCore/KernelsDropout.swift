extension SeededRandom {
    /// An inverted-dropout mask as `torch.nn.Dropout(p)` applies it in training: each element is 0 with
    /// probability `dropProbability`, else 1 / (1 - p), so the masked input keeps its expectation.
    public mutating func dropoutMaskTensor(shape: [Int], dropProbability p: Float) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout probability must lie in [0, 1), got \(p)")
        let kept = 1 / (1 - p)
        return Tensor(shape: shape) { for i in $0.indices { $0[i] = uniform() < p ? 0 : kept } }
    }
}

extension Kernels {
    /// The elementwise product of two tensors of one shape (a dense result).
    public static func multiply(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "multiply: \(a.shape) and \(b.shape) differ in shape")
        return a.withUnsafeBufferPointer { px in
            b.withUnsafeBufferPointer { py in
                // A plain loop over dense buffers: the compiler vectorizes it.
                Tensor(shape: a.shape) { out in for i in out.indices { out[i] = px[i] * py[i] } }
            }
        }
    }
}
