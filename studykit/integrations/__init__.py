"""Hand-offs to other engines. `verl`: studykit's reward as verl's custom reward function (`verl.compute_score`),
the parquet export and launch script (`verl_export`), the advantage estimators verl lacks (`verl_estimators`, imported
only inside a verl environment) and the import of a finished verl run's validation into studykit's names
(`verl_import`).

Layer 9. May import: every layer below (infra ... probes); its command is `studykit.cli.verl`.
"""
