"""The simulated world behind the sim target (pipeline/targets/sim.py): a pure request
model (model.py) and what a provider measures of it (measure.py), scenarios
(scenario.py), the worker's in-memory fleet and its clock (fleet.py), and its router."""
