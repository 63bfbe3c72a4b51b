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

# The bundle's own alert thresholds, which no seed gives: the alert rules state them and the
# dashboards mark them on the panels that show the alerted series.
TASK_SLO_RATIO = 0.99  # task SLO: 99 % of tasks within TASK_SLA_SECONDS (error budget 1 %)
TASK_SLO_BURN_RATES = (14.4, 6.0, 3.0)  # burn-rate alerts: fast (1 h), medium (6 h), slow (1 d)
TASK_ANOMALY_ZSCORE = 3.0  # TaskThroughputAnomaly: |z| beyond this
DURATION_ANOMALY_ZSCORE = 3.5  # TaskDurationAnomaly, RagLatencyAnomaly: |z| beyond this (and 40 % away)
AGENT_ERROR_RATIO_HIGH = 0.25  # AgentErrorRateHigh: an agent fails more than 25 % of its tasks
AGENT_NOT_SEEN_SECONDS = 300  # AgentNotSeen: no status event for 5 minutes
SWARM_AVAILABILITY_MIN_RATIO = 0.80  # SwarmAvailabilityLow
TRAINING_STALLED_SECONDS = 900  # TrainingStalled: no progress event for 15 minutes
RAG_LATENCY_P95_SECONDS = 2.5  # RagLatencyHigh
RAG_SUCCESS_MIN_RATIO = 0.90  # RagSuccessRatioLow
RAG_CACHE_HIT_MIN_RATIO = 0.20  # RagCacheHitRatioLow
RAG_LOW_CONFIDENCE_MAX_RATIO = 0.30  # RagLowConfidenceHigh: answers with confidence <= 0.5
HOST_CPU_UTILIZATION_HIGH_RATIO = 0.90  # HostCpuUtilizationHigh
HOST_MEMORY_UTILIZATION_HIGH_RATIO = 0.90  # HostMemoryUtilizationHigh
HOST_FILESYSTEM_AVAILABLE_LOW_RATIO = 0.40  # HostFilesystemFillingUp (with a filling trend)
EXPORTER_INVALID_EVENTS_MAX_RATIO = 0.05  # ExporterEventsInvalid

# LLM calls (no seed: the bundle's own defaults). The spend alerts compare with the daily budgets
# of the exporter's config (llm.daily_budget_usd), which it exports as gauges (docs/metrics.md).
LLM_BUDGET_BURN_RATE = 1.0  # Llm*SpendOverBudget: spending at a pace that uses the budget in a day
LLM_PROVIDER_ERROR_RATIO_HIGH = 0.10  # LlmProviderErrorRatioHigh: a provider fails over 10 %
LLM_RATE_LIMITED_RATIO_HIGH = 0.05  # LlmRateLimited: over 5 % of a provider's calls get 429
LLM_LATENCY_P95_SECONDS = 30.0  # LlmLatencyHigh: p95 duration of a model's successful calls
LLM_TIME_TO_FIRST_TOKEN_P95_SECONDS = 5.0  # LlmTimeToFirstTokenHigh
LLM_MIN_CALLS_PER_SECOND = 0.05  # the ratio and latency alerts judge 15+ calls per 5 minutes
