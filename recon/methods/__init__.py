"""Reconstruction methods as steppable sessions: `registry` names them, `session` says what each
offers (the Session protocol, StepRecord, Snapshot); NDS (`nds`, `config`, `checkpoint`) is the first."""
