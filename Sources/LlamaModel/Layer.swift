import TensorCore

/// What one decoder layer's backward needs from its forward.
package struct LayerActivations: Sendable {
    /// The layer's input, and the reciprocal RMS of each of its rows.
    package var input: Tensor
    package var inputRstd: Tensor
    /// Queries and keys after rotary embedding, values.
    package var query: Tensor
    package var key: Tensor
    package var value: Tensor
    /// With per-head q/k norms (Qwen3): the projections they normed, and each row and head's reciprocal RMS.
    package var queryNorm: HeadNormActivations?
    package var keyNorm: HeadNormActivations?
    /// Attention probabilities [kvHeads, group, t, t] of each span.
    package var probabilities: [Tensor]
    /// The residual stream after attention, and the reciprocal RMS of its rows.
    package var middle: Tensor
    package var middleRstd: Tensor
    package var mlp: MLPActivations
    package var linear: [LoRATarget: LinearActivations]
}

/// What a per-head RMSNorm's backward needs.
package struct HeadNormActivations: Sendable {
    package var input: Tensor
    package var rstd: Tensor
}

extension LlamaModel {
    /// Decoder layer `layer` on `x` ([rows, hidden], packed as `rows` says): x + attention(norm(x)), then
    /// h + mlp(norm(h)). The families' parts slot in where transformers has them: each linear's bias, Qwen3's
    /// q/k norms after projection and before rotary, Mistral's sliding window in attention's mask. Training (`saving`, no caches) attends each span to itself and returns what the
    /// backward needs; inference (no saving) appends each span's keys and values to its stream's cache
    /// (`caches[i]` for span i) and attends over the cache and itself.
    package func layerForward(
        _ x: Tensor, layer: Int, rows: PackedRows, lora: LoRARows, caches: inout [KVCache], saving: Bool
    ) -> (output: Tensor, saved: LayerActivations?) {
        precondition(!saving || caches.isEmpty, "a pass that saves activations attends each span to itself, with no cache")
        precondition(caches.isEmpty || caches.count == rows.spans.count, "one cache per span")
        let w = weights.layers[layer], epsilon = config.rmsNormEpsilon
        var linear: [LoRATarget: LinearActivations] = [:]
        func project(_ input: Tensor, _ target: LoRATarget) -> Tensor {
            let (y, saved) = Linear.forward(
                input, weight: w[target], bias: w.bias(target), layer: layer, target: target, lora: lora, saving: saving)
            if let saved { linear[target] = saved }
            return y
        }

        // Attention.
        let (normed, inputRstd) = Kernels.rmsNorm(x, weight: w.inputNorm, epsilon: epsilon)
        var q = project(normed, .query), k = project(normed, .key)
        let v = project(normed, .value)
        // Qwen3's per-head RMSNorm of queries and keys, before rotary embedding.
        func headNorm(_ x: inout Tensor, _ weight: Tensor?) -> HeadNormActivations? {
            guard let weight else { return nil }
            let (output, rstd) = Kernels.headRMSNorm(x, weight: weight, headDimension: config.headDimension, epsilon: epsilon)
            let saved = saving ? HeadNormActivations(input: x, rstd: rstd) : nil
            x = output
            return saved
        }
        let queryNorm = headNorm(&q, w.queryNorm), keyNorm = headNorm(&k, w.keyNorm)
        Kernels.rotary(&q, positions: rows.positions, table: rotary)
        Kernels.rotary(&k, positions: rows.positions, table: rotary)
        var attended = rows.spans.count == 1 ? q : Tensor(unfilled: q.shape)  // every span's rows replaced
        var probabilities: [Tensor] = []
        for (index, span) in rows.spans.enumerated() {
            let keys: Tensor, values: Tensor
            if caches.isEmpty {
                (keys, values) = (k.slice(0, span), v.slice(0, span))
            } else {
                caches[index].append(layer: layer, keys: k.slice(0, span), values: v.slice(0, span))
                let seen = 0..<caches[index].count + span.count
                (keys, values) = (caches[index].keys[layer].slice(0, seen), caches[index].values[layer].slice(0, seen))
            }
            let (output, spanProbabilities) = Attention.forward(
                queries: q.slice(0, span), keys: keys, values: values, config: config, saving: saving)
            if let spanProbabilities { probabilities.append(spanProbabilities) }
            if rows.spans.count == 1 { attended = output } else { attended.replaceRows(startingAt: span.lowerBound, with: output) }
        }
        let middle = Residual.forward(project(attended, .output), x)

        // MLP.
        let (normed2, middleRstd) = Kernels.rmsNorm(middle, weight: w.postAttentionNorm, epsilon: epsilon)
        let (mlpOutput, mlp) = MLP.forward(normed2, saving: saving, project: project)
        let output = Residual.forward(mlpOutput, middle)
        guard saving else { return (output, nil) }
        return (output, LayerActivations(
            input: x, inputRstd: inputRstd, query: q, key: k, value: v, queryNorm: queryNorm, keyNorm: keyNorm,
            probabilities: probabilities,
            middle: middle, middleRstd: middleRstd, mlp: mlp!, linear: linear))
    }
}
