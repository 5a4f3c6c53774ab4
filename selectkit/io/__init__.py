"""The one I/O layer: every table, vector matrix and artefact is read and written here."""

from selectkit.io.dataset import (
    DatasetRecord,
    DatasetWriter,
    PartRecord,
    dataset_parts,
    is_folder_output,
    read_record,
    write_part,
)
from selectkit.io.formats import detect_format
from selectkit.io.provenance import Provenance, read_provenance
from selectkit.io.tables import Source, Table, iter_batches, read_table
from selectkit.io.vectors import as_matrix
from selectkit.io.write import TableWriter, check_output_path, output_group, write_table

__all__ = [
    "DatasetRecord",
    "DatasetWriter",
    "PartRecord",
    "Provenance",
    "Source",
    "Table",
    "TableWriter",
    "as_matrix",
    "check_output_path",
    "dataset_parts",
    "detect_format",
    "is_folder_output",
    "iter_batches",
    "output_group",
    "read_provenance",
    "read_record",
    "read_table",
    "write_part",
    "write_table",
]
