// A @bufbuild/protobuf registry for our .proto files without protoc: protobufjs parses them and exports a
// FileDescriptorSet (protobufjs/ext/descriptor); we repair the two things that export leaves out for other
// runtimes — fully-qualified type names and file dependencies — and hand it to createFileRegistry.
import { createFileRegistry, fromBinary, type DescMessage, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import protobuf from 'protobufjs';
import descriptorExt from 'protobufjs/ext/descriptor/index.js';

interface FieldDescriptor {
  name: string;
  typeName?: string;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  enumType: Array<{ name: string }>;
}
interface FileDescriptor {
  name: string;
  package?: string;
  dependency: string[];
  messageType: MessageDescriptor[];
  enumType: Array<{ name: string }>;
}
interface DescriptorSet {
  file: FileDescriptor[];
}
interface DescriptorModule {
  FileDescriptorSet: { encode(message: DescriptorSet): { finish(): Uint8Array } };
}

export function bufbuildRegistry(root: protobuf.Root): FileRegistry {
  const set = (root as unknown as { toDescriptor(edition: string): DescriptorSet }).toDescriptor('proto3');
  const fileOfType = new Map<string, string>();
  for (const file of set.file) {
    const visit = (m: MessageDescriptor, prefix: string) => {
      const full = `${prefix}.${m.name}`;
      fileOfType.set(full, file.name);
      for (const e of m.enumType) fileOfType.set(`${full}.${e.name}`, file.name);
      for (const n of m.nestedType) visit(n, full);
    };
    const pkg = file.package ? `.${file.package}` : '';
    for (const e of file.enumType) fileOfType.set(`${pkg}.${e.name}`, file.name);
    for (const m of file.messageType) visit(m, pkg);
  }
  for (const file of set.file) {
    const deps = new Set<string>();
    const useType = (name: string) => {
      const dep = fileOfType.get(name);
      if (dep && dep !== file.name) deps.add(dep);
    };
    const visit = (m: MessageDescriptor, prefix: string) => {
      const full = `${prefix}.${m.name}`;
      const pbType = root.lookup(full);
      if (!(pbType instanceof protobuf.Type)) return;
      for (const f of m.field) {
        if (!f.typeName) continue;
        const pbField = pbType.fields[f.name] ?? pbType.fields[protobuf.util.camelCase(f.name)];
        if (pbField instanceof protobuf.MapField) {
          // The synthesized <Field>Entry message: qualify the reference, and its `value` field's type.
          const entryName = f.typeName.split('.').pop()!;
          f.typeName = `${full}.${entryName}`;
          const entry = m.nestedType.find((n) => n.name === entryName);
          const value = entry?.field.find((x) => x.name === 'value');
          if (value?.typeName && pbField.resolvedType) {
            value.typeName = pbField.resolvedType.fullName;
            useType(value.typeName);
          }
        } else if (pbField?.resolvedType) {
          f.typeName = pbField.resolvedType.fullName;
          useType(f.typeName);
        }
      }
      for (const n of m.nestedType) visit(n, full);
    };
    for (const m of file.messageType) visit(m, file.package ? `.${file.package}` : '');
    file.dependency = [...deps];
  }
  // A FileDescriptorSet is registered in order: dependencies first.
  const byName = new Map(set.file.map((f) => [f.name, f]));
  const ordered: FileDescriptor[] = [];
  const place = (f: FileDescriptor, path: Set<string>) => {
    if (ordered.includes(f)) return;
    if (path.has(f.name)) throw new Error(`import cycle through ${f.name}`);
    path.add(f.name);
    for (const d of f.dependency) place(byName.get(d)!, path);
    ordered.push(f);
  };
  for (const f of set.file) place(f, new Set());
  set.file = ordered;
  const bytes = (descriptorExt as unknown as DescriptorModule).FileDescriptorSet.encode(set).finish();
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
}

export function messageDesc(registry: FileRegistry, typeName: string): DescMessage {
  const desc = registry.getMessage(typeName);
  if (!desc) throw new Error(`${typeName} not in the registry`);
  return desc;
}
