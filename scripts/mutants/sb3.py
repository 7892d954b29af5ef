"""Mutants of the SB3 learner, algo=ppo (rlmusic/algos/sb3): each a single realistic edit that
makes it learn the wrong thing, and the fast tests that must notice (issue 33)."""

PPO = "rlmusic/algos/sb3/ppo.py"
POLICY = "rlmusic/algos/sb3/ppo_policy.py"
POSITIONS = "rlmusic/algos/sb3/positions.py"
GUARDS = "tests/test_sb3_ppo_guards.py"
BASE = "tests/test_sb3_ppo.py"


def guard(name: str) -> str:
    return f"{GUARDS}::{name}"


DIRECTION = guard("test_ppo_raises_the_probability_of_the_paid_token")
CLIP = guard("test_clipped_samples_pull_no_further_and_the_clip_range_is_the_configured_one")
NORMALISED = guard("test_normalised_advantages_make_the_update_invariant_to_their_scale_and_offset")
ENTROPY = guard("test_the_entropy_bonus_raises_the_entropy")
KL_PULL = guard("test_the_kl_penalty_pulls_the_policy_towards_the_prior")
ADAPTIVE = guard("test_the_adaptive_beta_follows_the_measured_kl")
VALUE_FIT = guard("test_the_value_function_fits_large_returns_within_a_few_updates")
OPTIMIZERS = guard("test_each_optimizer_moves_only_its_own_module")
TARGET_KL = guard("test_target_kl_stops_the_epochs_before_the_minibatch_that_exceeds_it")
GAE = guard("test_advantages_are_gae_of_the_penalised_rewards_once_the_critic_predicts")
SETTINGS = guard("test_every_ppo_setting_of_the_config_reaches_the_learner")

MUTANTS = [
    # ---- the clipped surrogate: direction, ratio, clipping ----
    {
        "name": "policy loss sign flipped (the surrogate is minimised)",
        "file": PPO,
        "old": "policy_loss = -torch.min(",
        "new": "policy_loss = torch.min(",
        "tests": [DIRECTION],
    },
    {
        "name": "ratio inverted (old / new)",
        "file": PPO,
        "old": "log_ratio = log_prob - batch.old_log_prob",
        "new": "log_ratio = batch.old_log_prob - log_prob",
        "tests": [DIRECTION],
    },
    {
        "name": "ratio against the current log-probs, not the rollout's (always 1)",
        "file": PPO,
        "old": "log_ratio = log_prob - batch.old_log_prob",
        "new": "log_ratio = log_prob - log_prob.detach()",
        "tests": [CLIP],
    },
    {
        "name": "clipping removed from the policy loss",
        "file": PPO,
        "old": "advantages * ratio.clamp(1 - clip_range, 1 + clip_range)",
        "new": "advantages * ratio",
        "tests": [CLIP],
    },
    {
        "name": "clip range ignored (SB3's default 0.2 hard-coded)",
        "file": PPO,
        "old": "clip_range = float(self.clip_range(self._current_progress_remaining))",
        "new": "clip_range = 0.2",
        "tests": [CLIP],
    },
    {
        "name": "optimistic bound (max) instead of PPO's pessimistic min",
        "file": PPO,
        "old": "-torch.min(",
        "new": "-torch.max(",
        "tests": [CLIP],
    },
    # ---- advantages ----
    {
        "name": "advantage sign flipped",
        "file": PPO,
        "old": "advantages = batch.advantages",
        "new": "advantages = -batch.advantages",
        "tests": [DIRECTION],
    },
    {
        "name": "normalize_advantage read the wrong way round",
        "file": PPO,
        "old": "if self.normalize_advantage and len(advantages) > 1:",
        "new": "if not self.normalize_advantage and len(advantages) > 1:",
        "tests": [NORMALISED],
    },
    {
        "name": "advantages centred but not scaled",
        "file": PPO,
        "old": "advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
        "new": "advantages = advantages - advantages.mean()",
        "tests": [NORMALISED],
    },
    {
        "name": "advantages scaled but not centred",
        "file": PPO,
        "old": "advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
        "new": "advantages = advantages / (advantages.std() + 1e-8)",
        "tests": [NORMALISED],
    },
    {
        "name": "entropy bonus sign flipped (an entropy penalty)",
        "file": PPO,
        "old": "loss = policy_loss - self.ent_coef * entropy.mean()",
        "new": "loss = policy_loss + self.ent_coef * entropy.mean()",
        "tests": [ENTROPY],
    },
    # ---- KL control ----
    {
        "name": "KL penalty sign flipped (a bonus for leaving the prior)",
        "file": PPO,
        "old": "buffer.rewards -= penalty.cpu()",
        "new": "buffer.rewards += penalty.cpu()",
        "tests": [KL_PULL],
    },
    {
        "name": "KL penalty not in the advantages (GAE not redone after it)",
        "file": PPO,
        "old": "            buffer.compute_returns_and_advantage(last_values, self._last_episode_starts)\n",
        "new": "",
        "tests": [KL_PULL],
    },
    {
        "name": "KL measured against the policy itself instead of the prior",
        "file": PPO,
        "old": "prior_logits = self.rollout_logits(self.prior, buffer)",
        "new": "prior_logits = self.rollout_logits(self.policy.generator, buffer)",
        "tests": [KL_PULL],
    },
    {
        "name": "adaptive KL controller never updated",
        "file": PPO,
        "old": "            self.kl.update(float(kl.mean()), kl.size)\n",
        "new": "",
        "tests": [ADAPTIVE],
    },
    {
        "name": "redone GAE bootstraps past the rollout's last pieces (dones ignored)",
        "file": PPO,
        "old": "buffer.compute_returns_and_advantage(last_values, self._last_episode_starts)",
        "new": "buffer.compute_returns_and_advantage(last_values, np.zeros_like(self._last_episode_starts))",
        "tests": [GAE],
    },
    # ---- the value function ----
    {
        "name": "PopArt statistics never updated",
        "file": PPO,
        "old": "        policy.value_fn.update_statistics(torch.as_tensor(buffer.returns, device=self.device))\n",
        "new": "",
        "tests": [VALUE_FIT],
    },
    {
        "name": "value targets at the wrong step index (the last token read as the position)",
        "file": PPO,
        "old": "positions = batch.observations[:, length]",
        "new": "positions = batch.observations[:, length - 1]",
        "tests": [VALUE_FIT],
    },
    {
        "name": "value loss regresses the rollout's values instead of its returns",
        "file": PPO,
        "old": "value_loss = policy.value_fn.loss(hidden, positions, batch.returns)",
        "new": "value_loss = policy.value_fn.loss(hidden, positions, batch.old_values)",
        "tests": [VALUE_FIT],
    },
    {
        "name": "one gradient clip over the generator and the value function",
        "file": PPO,
        "old": "nn.utils.clip_grad_norm_(generator_params, self.max_grad_norm)",
        "new": "nn.utils.clip_grad_norm_(generator_params + value_params, self.max_grad_norm)",
        "tests": [f"{BASE}::test_a_large_value_gradient_does_not_shrink_the_policy_step"],
    },
    {
        "name": "the generator's optimizer also steps the value function",
        "file": POLICY,
        "old": "self.generator.parameters(), lr=lr, **self.optimizer_kwargs",
        "new": "self.parameters(), lr=lr, **self.optimizer_kwargs",
        "tests": [OPTIMIZERS],
    },
    {
        "name": "value_lr ignored (the value function at the generator's rate)",
        "file": POLICY,
        "old": "lr=lr if self.value_lr is None else self.value_lr,",
        "new": "lr=lr,",
        "tests": [OPTIMIZERS],
    },
    {
        "name": "dropout on while training (the ratio compares another function)",
        "file": POLICY,
        "old": "        self.generator.eval()  # dropout off: the PPO ratio must compare the sampling function\n",
        "new": "",
        "tests": [f"{BASE}::test_a_zero_learning_rate_update_has_ratio_one"],
    },
    # ---- target_kl ----
    {
        "name": "target_kl never stops (approx KL's sign flipped)",
        "file": PPO,
        "old": "approx_kl = float(((ratio - 1) - log_ratio).mean())",
        "new": "approx_kl = float((log_ratio - (ratio - 1)).mean())",
        "tests": [TARGET_KL],
    },
    {
        "name": "target_kl's stop applies the minibatch that exceeded it",
        "file": PPO,
        "old": "this minibatch is not applied\n                    break\n",
        "new": "this minibatch is not applied\n",
        "tests": [TARGET_KL],
    },
    {
        "name": "target_kl's stop ends only the epoch, not the update",
        "file": PPO,
        "old": "            if stop:\n                break\n",
        "new": "",
        "tests": [TARGET_KL],
    },
    # ---- settings and positions ----
    {
        "name": "algo.gamma not passed to SB3 (its default 0.99 used)",
        "file": "rlmusic/algos/sb3/config.py",
        "old": "    gamma: float = sb3_arg(0.5)",
        "new": "    gamma: float = 0.5",
        "tests": [SETTINGS],
    },
    {
        "name": "algo.gae_lambda not passed to SB3 (its default 0.95 used)",
        "file": "rlmusic/algos/sb3/config.py",
        "old": "    gae_lambda: float = sb3_arg(0.95)",
        "new": "    gae_lambda: float = 0.95",
        "tests": [SETTINGS],
    },
    {
        "name": "policy read one position early (the distribution before the last token)",
        "file": POSITIONS,
        "old": "t = obs[:, length].clamp(0, length - 1)",
        "new": "t = (obs[:, length] - 1).clamp(0, length - 1)",
        "tests": [f"{BASE}::test_the_policy_starts_as_the_pretrained_generator"],
    },
]
