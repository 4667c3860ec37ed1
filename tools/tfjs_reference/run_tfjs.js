// Runs the original TFJS graph models with @tensorflow/tfjs (pure-JS CPU backend) on inputs written
// by make_reference.py, and writes the outputs back as raw float32 files. No faceaudit code here.
//
//   node run_tfjs.js MODELS_DIR WORK_DIR
//
// WORK_DIR/jobs.json: [{"model": "faceres", "input": "faceres.in.f32", "shape": [N, H, W, C],
//                       "outputs": ["global_pooling/Mean", ...]}, ...]
// writes WORK_DIR/<model>.<i>.out.f32 (output i, row-major float32) and WORK_DIR/results.json
// (shapes, tfjs version, backend).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function handler(modelJson) {
  const doc = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const dir = path.dirname(modelJson);
  const buffers = [];
  const specs = [];
  for (const group of doc.weightsManifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return {
    load: async () => ({
      modelTopology: doc.modelTopology,
      weightSpecs: specs,
      weightData,
      format: doc.format,
      generatedBy: doc.generatedBy,
      convertedBy: doc.convertedBy,
      signature: doc.signature,
      userDefinedMetadata: doc.userDefinedMetadata,
    }),
  };
}

async function main() {
  const [modelsDir, workDir] = process.argv.slice(2);
  await tf.setBackend('cpu');
  await tf.ready();
  const jobs = JSON.parse(fs.readFileSync(path.join(workDir, 'jobs.json'), 'utf8'));
  const results = { tfjs_version: tf.version.tfjs, backend: tf.getBackend(), jobs: [] };
  for (const job of jobs) {
    const model = await tf.loadGraphModel(handler(path.join(modelsDir, job.model + '.json')));
    const raw = fs.readFileSync(path.join(workDir, job.input));
    const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const x = tf.tensor(data, job.shape, 'float32');
    const inputName = model.inputs[0].name;
    let outs = model.execute({ [inputName]: x }, job.outputs);
    if (!Array.isArray(outs)) outs = [outs];
    const shapes = [];
    outs.forEach((t, i) => {
      const values = t.dataSync();
      fs.writeFileSync(path.join(workDir, `${job.model}.${i}.out.f32`), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      shapes.push(t.shape);
    });
    results.jobs.push({ model: job.model, input: inputName, outputs: job.outputs, shapes });
    tf.dispose(outs);
    x.dispose();
  }
  fs.writeFileSync(path.join(workDir, 'results.json'), JSON.stringify(results, null, 1));
}

main().catch((err) => { console.error(err); process.exit(1); });
