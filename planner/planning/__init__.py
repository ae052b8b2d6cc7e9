"""From a workload and a fleet to a plan: capacity under SLO, the ILP instance, plan assembly, verification, what-if."""
