from tests.retrieval_support import open_repo, retrieve


def test_annotated_const_brings_the_interface(tmp_path):
    files = {
        "src/types.ts": "export interface User {\n  id: number;\n  name: string;\n}\n",
        "src/app.ts": "import type { User } from './types';\n\nconst admin: User = <|>\n",
    }
    repo, cursors = open_repo(tmp_path, files)
    snippets = retrieve(repo, cursors["src/app.ts"], "typed_hole")
    assert snippets and snippets[0].path == "src/types.ts" and snippets[0].symbol == "User"
    assert "name: string" in snippets[0].text
