"""RL fine-tuning: SB3 PPO, RL-Tuner (Q/Psi/G on SB3 DQN), and a fast batched trainer."""
