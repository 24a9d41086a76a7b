"""Layer 4: one store opened for comparisons and jobs, the same for notebooks and the CLI.

    import ce
    s = ce.open("data/store")
    s.table2(k=10, ci=0.95).df()          # a Result: a DuckDB relation, with .notes
    s.sql.knn_agreement(k=20).df()        # every SQL file is a method with its signature
    s.extract("minilm", "sst2-dev", stage="pretrained", limit=100)

A session reads the run records once and holds one read-only DuckDB connection over the
parts that were live when it was made; a job run through the session writes to the store
and the next query sees its parts (the connection is made again). Nothing here imports
torch: the jobs load it when they run a model.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import duckdb

from ce.query.compare import (
    Result,
    checked_reference,
    cka,
    group_agreement,
    noise_floor,
    pie_examples,
    sliced,
    sweep,
    table2,
    table3,
)
from ce.query.sql import SqlFile, catalogue, connect, default_value, execute, resolve
from ce.store.errors import CeError, NotFound, StoreError, did_you_mean
from ce.store.store import Store


def _on_connection(comparison: Callable[..., Result]) -> Callable[..., Result]:
    """A comparison of ce.query.compare as a session method: on the session's connection,
    with the comparison's own parameters, defaults and help."""

    @functools.wraps(comparison)
    def method(self: Session, *args: Any, **kwargs: Any) -> Result:
        return comparison(self.con, *args, **kwargs)

    signature = inspect.signature(comparison)
    own = list(signature.parameters.values())[1:]  # every parameter but the connection
    first = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(parameters=[first, *own])
    return method


class Session:
    """A store opened for comparisons and jobs (make one with :func:`ce.open`)."""

    def __init__(self, store: str | Path | Store | None = None):
        if isinstance(store, Store):
            self.store = store
        elif store is not None and _is_url(str(store)):
            from ce.store.remote import RemoteStore

            self.store = RemoteStore(str(store))
        else:
            self.store = Store(store)
        self._con: duckdb.DuckDBPyConnection | None = None
        self.sql = SqlFunctions(self)

    def __repr__(self) -> str:
        return f"<ce session on {self.store.root}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; its reader's lease ends once no result of it is left."""
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The session's read-only DuckDB connection, with every view and macro."""
        if self._con is None:
            if not self.store.exists():  # a typo'd path must not read as an empty store
                raise NotFound(
                    f"no store at {self.store.root}: nothing to read; pass the folder of an"
                    " existing store (--store), or make one with a job (ce run, ce extract, ...)"
                )
            self._con = connect(self.store)
        return self._con

    def _changed(self) -> None:
        """Before and after a job: the next query connects again and sees the new parts.
        The old connection is dropped, not closed: results taken from it keep reading their
        snapshot (and its lease keeps their parts on disk); with none left, it goes now,
        lease and all, so the job's commit can remove the parts it supersedes."""
        self._con = None

    # -- reading ---------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        """Every run record of the store, oldest first."""
        return self.store.runs()

    def query(self, sql_or_name: str, **params: Any) -> Result:
        """Any read-only SQL over the store (``$name`` parameters given as keywords), or the
        name of a view, macro or query of the library."""
        text, bound = resolve(sql_or_name, params)
        return Result(execute(self.con, text, bound))

    table2 = _on_connection(table2)
    table3 = _on_connection(table3)
    sweep = _on_connection(sweep)
    sliced = _on_connection(sliced)
    noise_floor = _on_connection(noise_floor)
    group_agreement = _on_connection(group_agreement)
    pie_examples = _on_connection(pie_examples)
    cka = _on_connection(cka)

    # -- jobs ------------------------------------------------------------------------------
    def _writable(self) -> Store:
        from ce.store.remote import RemoteStore

        if isinstance(self.store, RemoteStore):
            raise StoreError(
                f"the store {self.store.root} is read-only here (a URL); jobs write to a local store folder"
            )
        self._changed()
        return self.store

    def extract(
        self,
        model: str,
        dataset: str,
        name: str | None = None,
        dataset_name: str | None = None,
        **options: Any,
    ):
        """Run ``model`` once over ``dataset``: predictions, embeddings and neighbour lists
        (options: the fields of ``ExtractOptions``, e.g. stage, limit, k_max). A replica
        group (``ce finetune --seeds``) runs once per member, stored as NAME-sSEED (NAME:
        ``name``, else the group's): a list of results then."""
        from ce.extractors.extract import ExtractOptions, extract

        store, settings = self._writable(), _options(ExtractOptions, options)
        return self._per_member(
            model,
            name,
            lambda m, n, replica: extract(
                store, m, dataset, settings, name=n, dataset_name=dataset_name, replica=replica
            ),
        )

    def ood(
        self,
        model: str,
        bank: str,
        dataset: str,
        id_val: str | None = None,
        name: str | None = None,
        **options,
    ):
        """Deep-kNN OOD scores of ``dataset`` (and the id-val split) against ``bank``
        (options: the fields of ``OodOptions``); a replica group scores each member (a list
        of results, as :meth:`extract`)."""
        from ce.extractors.ood import OodOptions, run_ood

        store, settings = self._writable(), _options(OodOptions, options)
        return self._per_member(
            model,
            name,
            lambda m, n, replica: run_ood(store, m, bank, id_val, dataset, settings, name=n, replica=replica),
        )

    def attack(self, model: str, dataset: str = "imdb-1k", name: str | None = None, **options: Any):
        """Adversarial attacks on ``model`` (options: the fields of ``AttackOptions``, e.g.
        attack, limit); a replica group attacks each member (a list of results, as
        :meth:`extract`)."""
        from ce.extractors.attack import AttackOptions, run_attack

        store, settings = self._writable(), _options(AttackOptions, options)
        return self._per_member(
            model,
            name,
            lambda m, n, replica: run_attack(store, m, dataset, settings, name=n, replica=replica),
        )

    def _per_member(self, model: str, name: str | None, job: Callable[[str, str | None, dict | None], Any]):
        """``job(model, name, replica)`` once, or once per member when ``model`` names a
        replica group (extractors/replicas.py): its result, or the list of the members'."""
        from ce.extractors.replicas import expand

        try:
            jobs = expand(self.store, model, name)
            results = [job(*one) for one in jobs]
        finally:
            self._changed()
        return results if jobs[0][2] is not None else results[0]

    def ingest(self, path: str | Path, model: str, dataset: str, dataset_name: str | None = None):
        """Record a JSON list of the example ids ``model`` got wrong as its predictions."""
        from ce.extractors.ingest import ingest_errors

        result = ingest_errors(self._writable(), path, model, dataset, dataset_name)
        self._changed()
        return result

    def ingest_lmeval(self, path: str | Path, model: str, metric: str | None = None) -> list[dict]:
        """Record an lm-evaluation-harness samples file, or every one in an output folder,
        as ``model``'s predictions (one dataset per task and filter)."""
        from ce.extractors.ingest_lmeval import ingest_lmeval

        return self._ingested(ingest_lmeval(self._writable(), path, model, metric))

    def ingest_lighteval(self, path: str | Path, model: str, **options: Any) -> list[dict]:
        """Record lighteval's per-task details Parquet files as ``model``'s predictions
        (options: metric, dataset_name)."""
        from ce.extractors.ingest_lighteval import ingest_lighteval

        return self._ingested(ingest_lighteval(self._writable(), path, model, **options))

    def ingest_textattack(self, path: str | Path, model: str, dataset: str, attack: str) -> dict:
        """Record TextAttack's CSV log as ``model``'s results of ``attack`` on ``dataset``."""
        from ce.extractors.ingest_textattack import ingest_textattack

        return self._ingested(ingest_textattack(self._writable(), path, model, dataset, attack))

    def ingest_table(self, path: str | Path, model: str, dataset: str, **columns: Any) -> dict:
        """Record any CSV/TSV/JSONL/Parquet table of per-example answers as ``model``'s
        predictions (``columns``: id_column, answer_column, correct_column, gold_column,
        prob_columns, probs_column, text_column, dataset_name)."""
        from ce.extractors.ingest_table import ingest_table

        return self._ingested(ingest_table(self._writable(), path, model, dataset, **columns))

    def export(
        self,
        out: str | Path,
        format: str = "parquet",
        models: tuple[str, ...] = (),
        datasets: tuple[str, ...] = (),
    ) -> dict:
        """Write the store's per-example predictions to ``out`` as ``format`` (parquet, csv,
        or lm-eval: lm-evaluation-harness sample logs that ``ingest_lmeval`` reads back)."""
        from ce.query.export import export_predictions

        return export_predictions(self.con, out, format, models, datasets)

    def set_reference(self, model: str | None) -> str | None:
        """Name ``model`` the store's reference (None: name none): every pair shows it first
        unless a comparison names another. Returns the reference before."""
        before = self.reference()
        checked_reference(self.con, model)
        with self._writable().run("reference", {"model": model}, model=model):
            pass
        self._changed()
        return before

    def reference(self) -> str | None:
        """The model the store names as its reference (``ce reference``), if any."""
        rows = execute(self.con, "select model from reference").fetchall()
        return rows[0][0] if rows else None

    def _ingested(self, result: Any) -> Any:
        self._changed()
        return result

    def compress(self, model: str, method: str, output: str, **options: Any):
        """A compressed copy of ``model`` in the store: ``method`` is int8, layers:N,
        prune:F or distill:N (options: allow_pickle, revision, and for distill the fields of
        ``DistillOptions``). A replica group G (``ce finetune --seeds``) is compressed member
        by member, G-sS into OUTPUT-sS, a replica group named ``output``: a list then."""
        from ce.extractors.compress import DistillOptions, compress, compress_replicas
        from ce.extractors.replicas import is_group

        own = {k: options.pop(k) for k in ("allow_pickle", "revision") if k in options}
        store, distill_options = self._writable(), _options(DistillOptions, options)
        make = compress_replicas if is_group(store, model) else compress
        try:
            return make(store, model, method, output, distill_options=distill_options, **own)
        finally:
            self._changed()

    def finetune(self, model: str, dataset: str, output: str, seeds: list[int] | None = None, **options: Any):
        """Fine-tune ``model`` on ``dataset`` into the store's model ``output`` (options: the
        fields of ``FinetuneOptions``). With ``seeds`` (at least two), one model per seed,
        OUTPUT-sSEED, all trained on the same examples: a replica group named ``output``,
        returned as a list."""
        from ce.extractors.finetune import FinetuneOptions, finetune, finetune_replicas

        store, settings = self._writable(), _options(FinetuneOptions, options)
        try:
            if seeds is not None:
                return finetune_replicas(store, model, dataset, output, settings, seeds)
            return finetune(store, model, dataset, output, settings)
        finally:
            self._changed()

    def mark_replica(self, model: str, of: str) -> str:
        """Record that the store's ``model`` (e.g. results ingested from elsewhere) is a
        replica of ``of``, another model of the store: it joins ``of``'s replica group, or
        the group named ``of`` that ``of`` then founds. Returns the group."""
        group = self.replica_group_for(model, of)
        if model not in self._model_names():
            raise NotFound(f"the store has no model {model!r}{did_you_mean(model, self._model_names())}")
        with self._writable().run("replica", {"of": of}, model=model, replica={"group": group, "seed": None}):
            pass
        self._changed()
        return group

    def replica_group_for(self, model: str, of: str) -> str:
        """The group ``model`` joins as a replica of ``of`` (:meth:`mark_replica`), checked
        without writing: ``of`` must be another model of the store."""
        from ce.store.schema import check_name

        check_name("model", model)
        if of == model:
            raise CeError(f"--replica-of {of} names the model itself; name another model of the store")
        names = self._model_names()
        if of not in names:
            raise NotFound(
                f"--replica-of {of!r}: the store has no such model{did_you_mean(of, names)};"
                " see ce models for its models"
            )
        found = execute(self.con, "select replica_group from replicas where model = $of", {"of": of})
        rows = found.fetchall()
        group = rows[0][0] if rows and rows[0][0] is not None else of
        if (
            not rows
            and execute(self.con, "select 1 from replicas where replica_group = $of", {"of": of}).fetchall()
        ):
            members = execute(
                self.con,
                "select model from replicas where replica_group = $of order by seed, model",
                {"of": of},
            ).fetchall()
            raise CeError(
                f"--replica-of {of}: {of} is a model of its own and also the name of the replica group of"
                f" {', '.join(m for (m,) in members[:3])}; name one of those to join that group"
            )
        if group == model:
            raise CeError(f"--replica-of {of}: {model} is the name of its replica group; name another model")
        return group

    def _model_names(self) -> list[str]:
        if not self.store.exists():
            return []
        return [row[0] for row in execute(self.con, "select model from models").fetchall()]

    def run(
        self,
        experiment: str | Path,
        limit: int | None = None,
        say: Callable[[str], None] = print,
        sample: str | None = None,
        seed: int | None = None,
    ) -> int:
        """Run an experiment file (see ``ce run --help``); returns how many steps ran."""
        from ce.extractors.experiment import run_experiment

        try:
            store = self._writable()
            return run_experiment(store, experiment, say=say, limit=limit, sample=sample, seed=seed)
        finally:
            self._changed()


def _options(cls: type, given: dict[str, Any]):
    """``cls(**given)``, an unknown option named as such, with the close ones."""
    known = {f.name for f in fields(cls)}
    for key in given:
        if key not in known:
            raise CeError(
                f"unknown option {key!r}{did_you_mean(key, known)};"
                f" {cls.__name__} has: {', '.join(sorted(known))}"
            )
    return cls(**given)


def _is_url(text: str) -> bool:
    from ce.store.remote import is_remote

    return is_remote(text)


class SqlFunctions:
    """Every view, macro and query of the SQL library as a method returning a Result:
    ``s.sql.knn_agreement(k=20)``, ``s.sql.accuracy()``; ``help(s.sql.NAME)`` shows its
    parameters and what it computes."""

    def __init__(self, session: Session):
        for f in catalogue():
            setattr(self, f.name, _sql_function(session, f))

    def __repr__(self) -> str:
        return f"<SQL library: {', '.join(sorted(vars(self)))}>"


def _sql_function(session: Session, f: SqlFile) -> Callable[..., Result]:
    required = [p for p in f.params if p not in f.optional]
    defaults = dict(zip(f.optional, f.defaults, strict=True))
    parameters = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in required] + [
        inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default_value(defaults[p]))
        for p in f.optional
    ]

    def call(*args: Any, **kwargs: Any) -> Result:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return session.query(f.name, **bound.arguments)

    signature = inspect.Signature(parameters)
    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = f.name
    call.__doc__ = f"{f.help}\n\n({f.category[:-1] if f.category != 'base' else 'view'} {f.name} of sql/)"
    return call


def open(store: str | Path | Store | None = None) -> Session:  # noqa: A001 - ce.open reads well
    """The store at ``store`` (a folder, or an https://, s3:// or hf:// URL to read;
    default: $CE_STORE or data/store) as a :class:`Session`."""
    return Session(store)
