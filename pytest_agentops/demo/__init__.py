"""The bundled reference agent and world: an online shop's support desk, a careful and a naive agent.

What ``scenarios/`` and the README use. The world (``Shop``, its tools and checks) is in ``world``, the
rule-based "model" in ``policy``, the agents in ``agents``. Scenario files name these objects as
``pytest_agentops.demo:careful_agent``, ``pytest_agentops.demo:TOOLS`` and so on.
"""

from .agents import (
    CAREFUL_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    DirectModel,
    Model,
    ModelReply,
    careful_agent,
    count_tokens,
    direct_model,
    estimate_tokens,
    make_agent,
    naive_agent,
)
from .http_model import HttpModel, careful_http_agent, http_model, naive_http_agent  # the model over HTTP (env.llm)
from .policy import CONFIRM_INSTRUCTION, CONFIRM_SCHEMA, CONFIRM_TOOL, parse_task, policy, tool_schema, tool_schemas
from .world import (
    TOOLS,
    Shop,
    cancel_order,
    cancelled,
    cancelled_once,
    customer_data_deleted,
    customer_data_kept,
    data_deleted,
    delete_customer_data,
    lookup_order,
    no_duplicate_side_effects,
    refund_done,
    refund_order,
    refunded_once,
    search_orders,
)

__all__ = [
    "CAREFUL_SYSTEM_PROMPT",
    "CONFIRM_INSTRUCTION",
    "CONFIRM_SCHEMA",
    "CONFIRM_TOOL",
    "SYSTEM_PROMPT",
    "TOOLS",
    "DirectModel",
    "HttpModel",
    "Model",
    "ModelReply",
    "Shop",
    "cancel_order",
    "cancelled",
    "cancelled_once",
    "careful_agent",
    "careful_http_agent",
    "count_tokens",
    "customer_data_deleted",
    "customer_data_kept",
    "data_deleted",
    "delete_customer_data",
    "direct_model",
    "estimate_tokens",
    "http_model",
    "lookup_order",
    "make_agent",
    "naive_agent",
    "naive_http_agent",
    "no_duplicate_side_effects",
    "parse_task",
    "policy",
    "refund_done",
    "refund_order",
    "refunded_once",
    "search_orders",
    "tool_schema",
    "tool_schemas",
]
