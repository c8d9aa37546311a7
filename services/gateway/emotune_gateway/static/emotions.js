// The seven emotions of the model (in its order), their colours and faces, and reading them.

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];

export const COLORS = {
  angry: "#e53935", disgust: "#6d9f2f", fear: "#8e44ad", happy: "#f2b705",
  sad: "#1e88e5", surprise: "#fb8c00", neutral: "#8a8f98",
};

export const EMOJI = {
  angry: "\u{1F620}", disgust: "\u{1F922}", fear: "\u{1F628}", happy: "\u{1F604}",
  sad: "\u{1F622}", surprise: "\u{1F62E}", neutral: "\u{1F610}",
};

export const NO_FACE = "\u{1F636}";

export const percent = (p) => `${Math.round((Number(p) || 0) * 100)}%`;

/** The 7 probabilities in the model's order, from a list or a {label: p} object. */
export function vector(probabilities) {
  if (Array.isArray(probabilities)) return EMOTIONS.map((_, i) => Number(probabilities[i]) || 0);
  return EMOTIONS.map((e) => Number((probabilities || {})[e]) || 0);
}
