"""The Bank tab's actions: the concepts and their sentences, adding a concept, import and export,
the trash; plain calls over the bank and jobs/, one-line errors for bad input."""
from __future__ import annotations

from pathlib import Path

from direction_bank.errors import BankError
from direction_bank.names import check_name, file_label
from direction_bank.studio.fields import replace_asked, row_id, whole
from direction_bank.studio.session import StudioSession, no_report
from sd_models.settings import SEED_RANGE

MAX_COUNT = 100_000  # sentences one click may ask for


class BankActions(StudioSession):
    """What the Bank tab does."""


    def concepts_table(self) -> list[list]:
        """[name, sentences, encoders] per concept."""
        with self.bank(read_only=True) as bank:
            return [[s.name, s.sentence_count,
                     ", ".join(f"{e['model']} ({e['count']})" for e in s.encoders) or "not embedded"]
                    for s in bank.concepts()]

    def concept_names(self) -> list[str]:
        """Every concept's name."""
        return [row[0] for row in self.concepts_table()]

    def sentences_table(self, concept: str) -> list[list]:
        """[id, text] per stored sentence of the concept."""
        with self.bank(read_only=True) as bank:
            return [[record.id, record.text] for record in bank.sentences(concept)]

    def remove_sentence(self, concept: str, sentence_id) -> str:
        """Remove a sentence by id and take it out of the statistics."""
        sentence_id = row_id(sentence_id, "sentence id", "sentences table")
        with self.bank() as bank:
            record = bank.remove_sentence(concept, lambda info: self._encoder_for(info), sentence_id=sentence_id)
        return f"moved #{record.id} of {concept} to the trash: {record.text}"

    def _encoder_for(self, info):
        if info.model != self.model:
            raise BankError(f"this sentence is also embedded by {info.model!r}; remove it with the CLI "
                            f"(the studio has {self.model!r} loaded)")
        return self.encoder()

    def remove_concept(self, concept: str) -> str:
        """Move a concept with its sentences and statistics to the trash."""
        with self.bank() as bank:
            count = bank.remove_concept(concept)
        return f"moved {concept} ({count} sentences) to the trash"

    def trash_table(self) -> list[list]:
        """[trash id, kind, name, what, removed at] per trash entry, newest first."""
        with self.bank(read_only=True) as bank:
            entries = bank.trash()
        rows = []
        for entry in entries:
            detail = entry["detail"] or {}
            what = (f"{detail.get('sentences', '?')} sentences" if entry["kind"] == "concept"
                    else f"{detail.get('versions', 1)} version(s)" if entry["kind"] == "direction"
                    else f"#{detail['sentence']['id']}: {detail['sentence']['text']}")
            rows.append([entry["id"], entry["kind"], entry["name"], what, entry["trashed_at"][:19]])
        return rows

    def restore(self, entry_id, as_name: str | None = None) -> str:
        """Put trash entry `entry_id` back (a concept or direction under `as_name` if given)."""
        from direction_bank.errors import NameTaken

        entry_id = row_id(entry_id, "trash id", "trash table")
        with self.bank() as bank:
            try:
                restored = bank.restore(entry_id=entry_id, as_name=(as_name or "").strip() or None)
            except NameTaken as error:
                raise BankError(f"{str(error).split(';')[0]}; type another name in 'restore as'") from None
        if restored["kind"] == "sentence":
            return f"restored #{restored['sentence_id']} to {restored['name']}: {restored['text']}"
        return f"restored {restored['kind']} {restored['name']}"

    def add_concept(self, name: str, generator: str | None, llm: str | None, count, seed=0,
                    report=no_report) -> str:
        """Generate, clean, embed and store sentences until `name` holds `count`
        (jobs.concepts.fill_concept); report(fraction, text) after every stored batch. Returns
        the lines dbank add-concept prints (jobs.concepts.fill_lines), and a stop short of the
        count."""
        from direction_bank.text.cleaning import CleaningSettings
        from direction_bank.text.generators import GENERATORS
        from direction_bank.jobs.concepts import fill_concept, fill_lines, sentence_writer, stopped_line

        name = check_name(name)
        count = whole(count, "target count", 1, MAX_COUNT)
        seed = whole(seed, "seed", *SEED_RANGE)
        if generator and generator not in GENERATORS:
            raise BankError(f"unknown generator {str(generator)[:60]!r}; choose one of {', '.join(GENERATORS)}")
        if llm and llm not in self.llms:
            offered = ", ".join(self.llms) if self.llms else "none besides the default"
            raise BankError(f"this server does not offer the LLM {str(llm)[:60]!r} (offered: {offered}); "
                            "leave it empty for the generator's default")
        cleaning = CleaningSettings()
        writer, deduplicator = sentence_writer(generator or None, llm or None, seed, self.device, cleaning)
        encoder = self.encoder()
        with self.bank() as bank:
            filled = fill_concept(bank, name, writer, deduplicator, cleaning, encoder, count,
                                  on_batch=lambda stored: report(stored / count, f"{stored}/{count} sentences"))
        stopped = stopped_line(filled)
        return "\n".join([*fill_lines(filled), *([stopped] if stopped else [])])

    def build_concepts(self, words, generator: str | None, llm: str | None, count, seed=0,
                       report=no_report) -> str:
        """add_concept for each of `words` (the concepts a word-swap edit stood in for), one after
        the other, with the progress of each; the lines of each, then how the next edit chooses."""
        words = list(words or [])
        if not words:
            raise BankError("no concept to build: edit to a word the bank holds no concept for first")
        lines = []
        for number, word in enumerate(words):
            def said(fraction, text, number=number, word=word):
                report((number + fraction) / len(words), f"building {word} ({number + 1} of {len(words)}): {text}")

            lines += self.add_concept(word, generator, llm, count, seed, said).splitlines()
        return "\n".join([*lines, "run the edit again: it uses the concepts' mean difference now"])

    def import_file(self, path: str, name: str | None = None, replace: bool = False) -> str:
        """Import an uploaded dbank file or pix2pix-zero .pt, checked against the server's model.
        A name in use is refused unless `replace` (nothing is lost: see Bank.import_file)."""
        from direction_bank.sharing.files import read_shared_file
        from direction_bank.sharing.transfer import import_name

        if not path:
            raise BankError("choose a file to import")
        shared = read_shared_file(path)
        import_name(shared, (name or "").strip() or None)  # before the model loads
        encoder = self.encoder()
        with self.bank() as bank, replace_asked("import as"):
            report = bank.import_file(shared, encoder, name=(name or "").strip() or None, overwrite=replace)
        return "\n".join([report.summary(Path(path).name), *(f"warning: {w}" for w in report.warnings)])

    def export(self, name: str) -> str:
        """A saved direction, or else a concept, written to a dbank file for download; its path."""
        from direction_bank.errors import UnknownDirection

        name = check_name(name)
        with self.bank(read_only=True) as bank:
            try:
                direction = bank.direction(name)
            except UnknownDirection:
                direction = None
            folder = self._fresh_folder()
            path = folder / f"{file_label(name)}.safetensors"
            if direction is not None:  # a download names no server folder
                bank.export_direction(direction, path, names_only=True)
            else:
                bank.export_concept(name, path, names_only=True)
        return str(path)
