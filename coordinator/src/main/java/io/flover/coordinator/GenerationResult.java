package io.flover.coordinator;

/**
 * A finished generation: the generated ids (including a final stop token, if one ended it), their text (null
 * when the model has no tokenizer), why it ended, and the logits at the last prompt position.
 */
public record GenerationResult(int[] tokenIds, String text, FinishReason finishReason, float[] firstLogits) {
}
