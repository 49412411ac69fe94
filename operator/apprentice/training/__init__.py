"""Training data hygiene, dataset shape and the trainers.

``corpus`` holds the rules of what may be trained on (train split only, valid answers, one
conversation per input, coaching and recency repeats), ``dataset`` the one chat-JSONL shape
every trainer reads, ``run`` the embedded trainer subprocess, ``job`` the Kubernetes trainer
Job and ``backends`` the fine-tuning backends.
"""
