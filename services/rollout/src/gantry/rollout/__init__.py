"""rollout: batched generation with logprobs, agent episodes, weight updates, heavy thinking."""
