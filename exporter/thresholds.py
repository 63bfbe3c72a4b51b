"""The seeds' numbers, in base units: one home for every threshold the bundle uses.

The exporter's histogram edges, the demo's incidents and the generated dashboards import them
from here; the alert rules state them literally (Prometheus cannot import) and carry each in a
`threshold` annotation that a test compares with this module. A leaf module: it imports nothing.
"""
from __future__ import annotations

# Tasks (seed 000, pattern 2 and ALERT_RULES)
TASK_SLA_SECONDS = 1800  # a task should finish within 30 minutes
TASK_SLA_COMPLIANCE_RATIO = 0.90  # sla_breach: compliance below 90 %
TASK_THROUGHPUT_MIN_PER_HOUR = 10  # low_throughput: fewer than 10 completions an hour

# Workflows (seed 000, workflow-orchestrator)
SLOW_STEP_SECONDS = 600  # slow_step_detected: the mean of a step's recent runs
SLOW_STEP_MIN_SAMPLES = 10  # ... over at least 10 of its last 100 runs

# Agents (seed 000, pattern 4)
LOAD_IMBALANCE_RATIO = 0.30  # unbalanced_load: a busy agent's deviation from their mean over 30 % of it

# Training (seed 000, pattern 1 and ALERT_RULES)
TRAINING_LOSS_HIGH = 5.0  # high_training_loss
TRAINING_LOSS_PLATEAU = 0.01  # loss_plateau: mean of the last 10 losses below this
TRAINING_CONVERGED_CHANGE_RATIO = 0.01  # convergence_detected: recent loss range under 1 % of its minimum

# GPUs (seed 000, pattern 3 and ALERT_RULES)
GPU_TEMPERATURE_HIGH_CELSIUS = 85.0  # high_temperature
GPU_TEMPERATURE_CRITICAL_CELSIUS = 90.0  # gpu_temperature_critical
GPU_MEMORY_EXHAUSTION_RATIO = 0.95  # memory_exhaustion
GPU_MEMORY_LEAK_BYTES = 1000 * 1024 * 1024  # memory_leak_detection: > 1000 MB in 5 minutes
GPU_LOW_UTILIZATION_RATIO = 0.30  # low_utilization while a project is training
GPU_ERROR_CORRELATION_CELSIUS = 85.0  # error_performance_correlation: mean of the last temperatures
