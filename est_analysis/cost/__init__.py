"""FLOPs and cost: the FLOPs model of a training step (`flops`, all the trainer needs) and the
scheduler cost simulator of section 3.3 (`simulator`). The paper's accounting of its own
figures (`cost.paper`) and the schedule search (`cost.search`) are imported explicitly."""

from est_analysis.cost.flops import (BACKWARD_FACTOR, elementwise_step_flops, forward_flops,
                                     head_mlp_costs, layer_forward_flops, layer_step_flops,
                                     module_table, step_flops)
from est_analysis.cost.simulator import (ACCOUNTINGS, StageCost, cost_table, loads_cost,
                                         method_saving, policy_costs, policy_step_cost, saving,
                                         schedule_costs, schedule_saving, speedup, step_cost)

__all__ = ["ACCOUNTINGS", "BACKWARD_FACTOR", "StageCost", "cost_table", "elementwise_step_flops",
           "forward_flops", "head_mlp_costs", "layer_forward_flops", "layer_step_flops",
           "loads_cost", "method_saving", "module_table", "policy_costs", "policy_step_cost",
           "saving", "schedule_costs", "schedule_saving", "speedup", "step_cost", "step_flops"]
